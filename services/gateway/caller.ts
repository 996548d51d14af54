// Who is calling: the API key's id once keys are configured (set by the auth hook), else null.
import type { FastifyInstance } from 'fastify';
declare module 'fastify' { interface FastifyRequest { apiKeyId: string | null } }
export function decorateCaller(app: FastifyInstance): void { app.decorateRequest('apiKeyId', null); }
