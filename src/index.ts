/**
 * The rbm-dispatch library: what a producer or an embedding service imports.
 *
 * Glossary
 *   agent message  an RBM AgentMessage sent to a phone (jobs/send-message)
 *   agent event    a READ receipt or IS_TYPING sent to a phone (jobs/send-event)
 *   messageId      the RBM UUID fixed at enqueue; every retry reuses it
 *   status         a message's state record in Redis, kept 30 days
 */
export { loadConfig, type Config, type AgentConfig } from './config.ts';
export { createService, type Service } from './service.ts';
export { Producer, type EnqueuedMessage, type EnqueuedEvent, type ProducerOptions, type SendOptions } from './queue/producer.ts';
export { JobQueues, type AddOptions } from './queue/job-queues.ts';
export { contractJobOptions, jobOptionsFrom, type JobOptionsTable } from './queue/job-options.ts';
export { ensureRedis } from './queue/local-redis.ts';
export { smsSettingsFrom } from './sms/from-config.ts';
export { callbackSecretFor, scopeOfApiKey } from './callbacks/secrets.ts';
export type { StatusChange, DeliverCallbackPayload } from '../jobs/deliver-callback.ts';
export { createLogger } from './logger.ts';
export type { MessageStatus, TimelineEntry } from './status/store.ts';
export { MessageStates, type MessageState } from './status/states.ts';
export {
  ERROR_CATALOGUE,
  ErrorCodes,
  httpStatusOf,
  DispatchError,
  ConfigError,
  PayloadError,
  RbmApiError,
  RbmNetworkError,
  RbmTokenUnavailableError,
  RbmAuthError,
  UnknownAgentError,
  UrlForbiddenError,
  classify,
  type CatalogueEntry,
  type Classification,
  type ErrorCode,
  type HttpCode,
} from './errors.ts';
export { EgressGuard, type EgressPolicy, type AllowEntry, type ResolveHost, type UrlRefusal } from './egress/guard.ts';
export { startEmulator, type RunningEmulator, type EmulatorOptions } from './emulator/index.ts';
export type { SendMessageInput, SendEventInput } from '../jobs/index.ts';
