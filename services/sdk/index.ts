// The SDK: `import { Client } from 'swapserve/sdk'` — enqueue straight into a model's BullMQ queue over Redis
// and get the completion, or an async iterator of tokens, with the serving path and timings.
export { Client, type ClientOptions, type Completion, type TokenChunk, type CompletionStream } from './client.ts';
export { SwapserveError, RequestError, type ErrorCode } from '../../contracts/errors.ts';
export type { ChatRequest, CompletionRequest } from '../../contracts/job.ts';
export type { Timings, TokenLogprob } from '../../contracts/stream.ts';
export type { ChatChoice, TextChoice } from '../gateway/openai-format.ts';
