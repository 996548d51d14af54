// GET /v1/models and GET /v1/models/:id: the configured models and their aliases, in OpenAI's list format.
import type { FastifyInstance } from 'fastify';
import { resolveModel } from '../../config/config.ts';
import { RequestError } from '../../../contracts/errors.ts';
import type { GatewayContext } from '../context.ts';

const created = Math.floor(Date.now() / 1000);
/**
 * A model card. `id` is the name a client sends as `model` (a model's id or one of its aliases: clients pick from
 * this list by id, so each alias is its own entry); `root` is the served model it names (vLLM's field).
 */
const card = (id: string, root: string) => ({ id, object: 'model', created, owned_by: 'swapserve', root, parent: null });

export async function modelRoutes(app: FastifyInstance, gw: GatewayContext): Promise<void> {
  app.get('/v1/models', async () => ({
    object: 'list',
    data: gw.config.models.flatMap((m) => [card(m.id, m.id), ...m.aliases.filter((a) => a !== m.id).map((a) => card(a, m.id))]),
  }));
  app.get<{ Params: { '*': string } }>('/v1/models/*', async (req) => {
    const id = req.params['*'];
    const m = resolveModel(gw.config, id);
    if (!m) throw new RequestError('model_not_found', { detail: id, param: 'model' });
    return card(id, m.id);
  });
}
