/**
 * What the service answered, as errors a Strands agent already catches: every
 * one is the SDK's `StorageError`, with the service's status, error name and
 * request id for the logs.
 */

import { StorageError } from '@strands-agents/sdk'

/** Where an error came from: the service's answer, if it gave one. */
export interface ErrorDetail {
  /** HTTP status, or `undefined` when the service could not be reached. */
  status?: number
  /** The envelope's `error` (e.g. `NotFoundError`), if the answer had one. */
  kind?: string
  /** The answer's `x-request-id`, to find the request in the service's logs. */
  requestId?: string
}

/** Any failure of a call to the service. */
export class SessionBackendError extends StorageError {
  readonly status: number | undefined
  readonly kind: string | undefined
  readonly requestId: string | undefined

  constructor(message: string, detail: ErrorDetail = {}, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.status = detail.status
    this.kind = detail.kind
    this.requestId = detail.requestId
  }
}

/** 422: the request itself is wrong (a bad key, prefix or query). */
export class InvalidRequestError extends SessionBackendError {}
/** 401: no API key, or one the service does not know. */
export class UnauthorizedError extends SessionBackendError {}
/** 404 of a route: the base URL is not the service's root. */
export class NotFoundError extends SessionBackendError {}
/** 412: a conditional write whose condition no longer holds. */
export class PreconditionFailedError extends SessionBackendError {}
/** 413: a value over the service's `storage.max_value_bytes`. */
export class PayloadTooLargeError extends SessionBackendError {}
/** 429 after every retry: the tenant's rate limit. */
export class RateLimitedError extends SessionBackendError {}
/** The service or its database is away (502/503/504, or no connection) after every retry. */
export class UnavailableError extends SessionBackendError {}

const BY_STATUS: Record<number, typeof SessionBackendError> = {
  401: UnauthorizedError,
  404: NotFoundError,
  412: PreconditionFailedError,
  413: PayloadTooLargeError,
  422: InvalidRequestError,
  429: RateLimitedError,
  502: UnavailableError,
  503: UnavailableError,
  504: UnavailableError,
}

/** The error for a refused answer, from its status and the contract's envelope. */
export async function errorFrom(what: string, response: Response): Promise<SessionBackendError> {
  const requestId = response.headers.get('x-request-id') ?? undefined
  let kind: string | undefined
  let message = `${response.status} ${response.statusText}`
  try {
    const body = (await response.json()) as { detail?: { error?: unknown; message?: unknown } | string }
    const detail = body.detail
    if (typeof detail === 'string') {
      message = detail
    } else if (detail !== undefined) {
      kind = typeof detail.error === 'string' ? detail.error : undefined
      message = typeof detail.message === 'string' ? detail.message : message
    }
  } catch {
    // Not the contract's envelope (a proxy's page): the status says enough.
  }
  const Kind = BY_STATUS[response.status] ?? SessionBackendError
  return new Kind(`${what}: ${message}`, {
    status: response.status,
    ...(kind === undefined ? {} : { kind }),
    ...(requestId === undefined ? {} : { requestId }),
  })
}
