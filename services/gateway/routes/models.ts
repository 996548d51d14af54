// GET /v1/models and GET /v1/models/:id: the configured models, in OpenAI's list format.
import type { FastifyInstance } from 'fastify';
import { resolveModel } from '../../config/config.ts';
import { RequestError } from '../../../contracts/errors.ts';
import type { GatewayContext } from '../context.ts';

const created = Math.floor(Date.now() / 1000);
const card = (id: string) => ({ id, object: 'model', created, owned_by: 'swapserve' });

export async function modelRoutes(app: FastifyInstance, gw: GatewayContext): Promise<void> {
  app.get('/v1/models', async () => ({ object: 'list', data: gw.config.models.map((m) => card(m.id)) }));
  app.get<{ Params: { '*': string } }>('/v1/models/*', async (req) => {
    const id = req.params['*'];
    const m = resolveModel(gw.config, id);
    if (!m) throw new RequestError('model_not_found', { detail: id, param: 'model' });
    return card(m.id);
  });
}
