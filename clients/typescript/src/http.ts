/**
 * The service's URL and key, and requests sent with retries: after a
 * connection error, 429 or 502/503/504, a few more times, waiting the
 * service's `Retry-After` (429, capped) or a jittered exponential backoff.
 * Every storage call is idempotent, so any of them may be sent again.
 */

import { SessionBackendError, UnavailableError, errorFrom } from './errors.js'

/** Where the client finds the service, and its key, when they are not given. */
export const URL_VARIABLE = 'SESSION_BACKEND_URL'
export const KEY_VARIABLE = 'SESSION_BACKEND_API_KEY'

const RETRY_STATUSES = new Set([429, 502, 503, 504])
const BACKOFF_BASE_MS = 100
const BACKOFF_CAP_MS = 2_000
const RETRY_AFTER_CAP_MS = 10_000

/** How requests reach the service. */
export interface ConnectionOptions {
  /** The service's root, e.g. `http://localhost:8001`; else `SESSION_BACKEND_URL`. */
  url?: string
  /** An API key (sent as a bearer token); else `SESSION_BACKEND_API_KEY`; else none. */
  apiKey?: string
  /** Per-attempt timeout in milliseconds (default 30 s). */
  timeoutMs?: number
  /** How many times a failed request is sent again (default 3). */
  retries?: number
}

/** The service's root URL: `url`, else `SESSION_BACKEND_URL`; refused when missing or when it names the API's path. */
export function serviceUrl(url: string | undefined): string {
  const raw = (url ?? process.env[URL_VARIABLE] ?? '').trim().replace(/\/+$/, '')
  if (raw === '') {
    throw new TypeError(`no service URL: pass url or set ${URL_VARIABLE} (e.g. http://localhost:8001)`)
  }
  let parsed: URL
  try {
    parsed = new URL(raw)
  } catch {
    throw new TypeError(`url \`${raw}\` is not an http(s) URL such as http://localhost:8001`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TypeError(`url \`${raw}\` is not an http(s) URL such as http://localhost:8001`)
  }
  const at = parsed.pathname.indexOf('/api/v1')
  if (at >= 0 && (parsed.pathname.endsWith('/api/v1') || parsed.pathname.includes('/api/v1/'))) {
    const root = raw.slice(0, raw.indexOf('/api/v1'))
    throw new TypeError(
      `url \`${raw}\` names the API's path; give the service's root, \`${root}\` (the client adds /api/v1 itself)`,
    )
  }
  return raw
}

/** A request to send: method, path (with query) and body. */
export interface Call {
  method: 'GET' | 'PUT' | 'DELETE' | 'HEAD'
  path: string
  body?: Uint8Array
  /** Statuses that are answers rather than failures (e.g. 404 for a read). */
  ok: readonly number[]
}

/** Sends calls to one service. */
export class Connection {
  readonly url: string
  readonly #headers: Record<string, string>
  readonly #timeoutMs: number
  readonly #retries: number

  constructor(options: ConnectionOptions = {}) {
    this.url = serviceUrl(options.url)
    const apiKey = options.apiKey ?? (process.env[KEY_VARIABLE] || undefined)
    this.#headers = apiKey ? { authorization: `Bearer ${apiKey}` } : {}
    this.#timeoutMs = options.timeoutMs ?? 30_000
    this.#retries = options.retries ?? 3
  }

  /** The answer to `call`: one of its `ok` statuses, else the error it stands for. */
  async send(call: Call): Promise<Response> {
    const what = `${call.method} ${call.path}`
    for (let attempt = 0; ; attempt++) {
      let response: Response | undefined
      let failure: unknown
      // The timeout bounds the wait for the answer's head; the body then
      // streams under the runtime's own per-chunk timeout, however large.
      const waiting = new AbortController()
      const timer = setTimeout(() => waiting.abort(new Error(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs)
      try {
        response = await fetch(this.url + call.path, {
          method: call.method,
          headers: call.body ? { ...this.#headers, 'content-type': 'application/octet-stream' } : this.#headers,
          ...(call.body ? { body: call.body } : {}),
          signal: waiting.signal,
        })
      } catch (error) {
        failure = error
      } finally {
        clearTimeout(timer)
      }
      if (response !== undefined && call.ok.includes(response.status)) {
        return response
      }
      const wait = attempt < this.#retries ? waitBefore(attempt, response) : undefined
      if (wait === undefined) {
        if (response === undefined) {
          throw new UnavailableError(`${what}: the service cannot be reached at ${this.url}`, {}, { cause: failure })
        }
        throw await errorFrom(what, response)
      }
      await response?.body?.cancel()
      await new Promise((resolve) => setTimeout(resolve, wait))
    }
  }
}

/** Milliseconds to wait before sending again, or `undefined` when the answer stands. */
function waitBefore(attempt: number, response: Response | undefined): number | undefined {
  if (response !== undefined && !RETRY_STATUSES.has(response.status)) {
    return undefined
  }
  const retryAfter = response?.status === 429 ? response.headers.get('retry-after') : null
  if (retryAfter !== null && retryAfter.trim() !== '') {
    const seconds = Number(retryAfter)
    if (Number.isFinite(seconds) && seconds >= 0) {
      return Math.min(RETRY_AFTER_CAP_MS, seconds * 1000)
    }
  }
  return Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt)
}

/**
 * Reads an answer's body with `read`; a failure on the way (the connection
 * cut, a body that is not what the service sends) is the SDK's
 * `StorageError` like any other.
 */
export async function readBody<T>(what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read()
  } catch (error) {
    throw new UnavailableError(`${what}: the answer could not be read: ${String(error)}`, {}, { cause: error })
  }
}

/** A 404 that says the path is no route of the service: the base URL is wrong. */
export async function isNoRoute(response: Response): Promise<boolean> {
  try {
    const body = (await response.clone().json()) as { detail?: { message?: unknown } }
    return body.detail?.message === 'no such route'
  } catch {
    return true
  }
}

export { SessionBackendError }
