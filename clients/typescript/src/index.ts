/**
 * Session Backend for Strands Agents in TypeScript: the SDK's `Storage` over
 * the service, so that the snapshot `SessionManager`, memory stores and
 * anything else taking a `Storage` keep their data on it.
 *
 * @packageDocumentation
 */

export {
  type ErrorDetail,
  InvalidRequestError,
  NotFoundError,
  PayloadTooLargeError,
  PreconditionFailedError,
  RateLimitedError,
  SessionBackendError,
  UnauthorizedError,
  UnavailableError,
} from './errors.js'
export { type ConnectionOptions, KEY_VARIABLE, URL_VARIABLE, serviceUrl } from './http.js'
export { type SearchHit, type SearchOptions, SessionBackendStorage, type StorageOptions } from './storage.js'
