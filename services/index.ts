// The package's public API (`import { ... } from 'swapserve'`); the SDK alone is `swapserve/sdk`.
export { Client, type ClientOptions, type Completion, type CompletionStream, type TokenChunk } from './sdk/index.ts';
export { loadConfig, parseConfig, configSchema, ConfigError, type Config, type ModelEntry } from './config/config.ts';
export { SwapserveError, RequestError, ERRORS, type ErrorCode, type OpenAIErrorBody } from '../contracts/errors.ts';
export { chatRequestSchema, completionRequestSchema, jobDataSchema, type JobData } from '../contracts/job.ts';
export { streamEventSchema, type StreamEvent, type Timings } from '../contracts/stream.ts';
export { queueName, keys, DEFAULT_PREFIX } from '../contracts/queues.ts';
export { connect } from './client/queues.ts';
export { startGateway, type Gateway } from './gateway/server.ts';
export { buildApp } from './gateway/app.ts';
export { SwapWorker, type SwapWorkerOptions } from './worker/worker.ts';
export { NativeBackend, type NativeBackendOptions } from './worker/native-backend.ts';
export type { ModelBackend } from './worker/backend.ts';
export { classifyPath } from './worker/residency.ts';
export * from '../contracts/vocab.ts';
