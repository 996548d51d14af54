// The package's public API (`import { ... } from 'swapserve'`); the SDK alone is `swapserve/sdk`.
export { Client, type ClientOptions, type Completion, type CompletionStream, type TokenChunk } from './sdk/index.ts';
export { loadConfig, parseConfig, configSchema, ConfigError, type Config, type ModelEntry } from './shared/config.ts';
export { SwapserveError, ERRORS, type ErrorCode, type OpenAIErrorBody } from './shared/errors.ts';
export { chatRequestSchema, completionRequestSchema, jobDataSchema, streamEventSchema, type JobData, type StreamEvent, type Timings } from './shared/job.ts';
export { queueName, keys, connect, DEFAULT_PREFIX } from './shared/queues.ts';
export { startGateway, type Gateway } from './gateway/server.ts';
export { buildApp } from './gateway/app.ts';
export { SwapWorker, type SwapWorkerOptions } from './worker/worker.ts';
export { NativeBackend, type NativeBackendOptions } from './worker/native-backend.ts';
export type { ModelBackend } from './worker/backend.ts';
export { classifyPath } from './worker/residency.ts';
export * from './shared/vocab.ts';
