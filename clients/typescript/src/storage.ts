/**
 * The SDK's `Storage` over the service's `/api/v1/storage`: bytes under keys,
 * shared by every replica, for the snapshot `SessionManager`, memory stores
 * and anything else that takes a `Storage`.
 */

import type { Storage } from '@strands-agents/sdk/storage'

import { InvalidRequestError, NotFoundError } from './errors.js'
import { type ConnectionOptions, Connection, isNoRoute, readBody } from './http.js'

const ROOT = '/api/v1/storage'

/**
 * The SDK's mark for a storage view already scoped to a namespace: its
 * session manager and memory stores then use the view as it is rather
 * than nesting their default prefix inside it.
 */
const NAMESPACED = Symbol.for('strands.storage.namespaced')

/** A search hit, as the SDK's `StorageSearchResult`. */
export interface SearchHit {
  key: string
  score: number
  /** The value, when the service sent it within its per-answer budget. */
  data?: Uint8Array
}

/** Options of {@link SessionBackendStorage.search}. */
export interface SearchOptions {
  /** Only keys under this prefix (relative to the storage's own). */
  prefix?: string
  /** At most this many hits (1 to 10000; default 1000). */
  limit?: number
  /** Bring the values along (default `true`). */
  withValues?: boolean
}

/** Options of a {@link SessionBackendStorage}. */
export interface StorageOptions extends ConnectionOptions {
  /** Keys per listing request (1 to 10000; default 10000). */
  listPage?: number
}

/** A key as the SDK's path-based backends normalise it: no empty or `..` segment, no backslash. */
function normalizeKey(key: string): string {
  if (key.includes('\\')) {
    throw new InvalidRequestError(`invalid storage key \`${key}\`: backslashes are not allowed`)
  }
  const parts = key.split('/').filter(Boolean)
  if (parts.length === 0 || parts.includes('..')) {
    throw new InvalidRequestError(`invalid storage key \`${key}\`: empty or with a \`..\` part`)
  }
  return parts.join('/')
}

/** A prefix as the SDK normalises one: a trailing `/` kept, empty for every key. */
function normalizePrefix(prefix: string): string {
  if (prefix.includes('\\')) {
    throw new InvalidRequestError(`invalid storage prefix \`${prefix}\`: backslashes are not allowed`)
  }
  const parts = prefix.split('/')
  const kept = parts.filter(Boolean)
  if (kept.includes('..')) {
    throw new InvalidRequestError(`invalid storage prefix \`${prefix}\`: \`..\` parts are not allowed`)
  }
  const joined = kept.join('/')
  return joined && parts.at(-1) === '' ? `${joined}/` : joined
}

/**
 * A key as one path segment (its `/` encoded too). URL parsers read `.` and
 * `%2E` alike as "this directory", so the key `.` goes as `.%2F` (the
 * service drops the trailing `/`).
 */
function keyPath(key: string): string {
  const encoded = encodeURIComponent(key)
  return `${ROOT}/${encoded === '.' ? '.%2F' : encoded}`
}

/**
 * Byte values under keys on the service.
 *
 * ```ts
 * new SessionManager({ sessionId: 'user-42', storage: new SessionBackendStorage() })
 * ```
 *
 * `search` ranks on the service (full-text) and brings the values along;
 * `namespace` scopes keys, its search included, on the service.
 */
export class SessionBackendStorage implements Storage {
  readonly #connection: Connection
  readonly #prefix: string
  readonly #listPage: number

  constructor(options: StorageOptions = {}, scope?: { connection: Connection; prefix: string }) {
    this.#connection = scope?.connection ?? new Connection(options)
    this.#prefix = scope?.prefix ?? ''
    this.#listPage = options.listPage ?? 10_000
  }

  /** The service's root URL. */
  get url(): string {
    return this.#connection.url
  }

  /** Stores `data` under `key`, overwriting. */
  async write(key: string, data: Uint8Array): Promise<void> {
    await this.#connection.send({ method: 'PUT', path: this.#path(key), body: data, ok: [204] })
  }

  /** The bytes under `key`, or `null`. */
  async read(key: string): Promise<Uint8Array | null> {
    const path = this.#path(key)
    const response = await this.#connection.send({ method: 'GET', path, ok: [200, 404] })
    if (response.status === 404) {
      await this.#missing(response, path)
      return null
    }
    return new Uint8Array(await readBody(`GET ${path}`, () => response.arrayBuffer()))
  }

  /** Deletes `key`; a missing key is fine. */
  async delete(key: string): Promise<void> {
    await this.#connection.send({ method: 'DELETE', path: this.#path(key), ok: [204] })
  }

  /** Every key starting with `prefix`, ascending, relative to this storage's namespace. */
  async list(prefix: string = ''): Promise<string[]> {
    const keys: string[] = []
    const query = new URLSearchParams({ prefix: this.#prefix + normalizePrefix(prefix), limit: `${this.#listPage}` })
    for (;;) {
      const response = await this.#connection.send({ method: 'GET', path: `${ROOT}?${query}`, ok: [200] })
      const page = await readBody('GET /api/v1/storage', () =>
        response.json() as Promise<{ keys: string[]; next_start_after: string | null }>,
      )
      keys.push(...page.keys.map((key) => this.#relative(key)))
      if (page.next_start_after === null) {
        return keys
      }
      query.set('start_after', page.next_start_after)
    }
  }

  /**
   * Keys whose text values match any word of `query`, best first, ranked on
   * the service; with their values unless `withValues` is `false` (hits past
   * the service's per-answer budget come without).
   */
  async search(query: string, options: SearchOptions = {}): Promise<SearchHit[]> {
    const params = new URLSearchParams({
      q: query,
      prefix: this.#prefix + normalizePrefix(options.prefix ?? ''),
      limit: `${options.limit ?? 1000}`,
    })
    if (options.withValues ?? true) {
      params.set('with_values', 'true')
    }
    const response = await this.#connection.send({ method: 'GET', path: `${ROOT}?${params}`, ok: [200] })
    const found = await readBody('GET /api/v1/storage', () =>
      response.json() as Promise<{ results: { key: string; score: number; data?: string }[] }>,
    )
    return found.results.map((hit) => ({
      key: this.#relative(hit.key),
      score: hit.score,
      ...(hit.data === undefined ? {} : { data: new Uint8Array(Buffer.from(hit.data, 'base64')) }),
    }))
  }

  /** Deletes every key starting with `prefix` (not empty); how many there were. */
  async deletePrefix(prefix: string): Promise<number> {
    const normalized = normalizePrefix(prefix)
    if (normalized === '') {
      throw new InvalidRequestError('deletePrefix needs a prefix; an empty one would delete every key')
    }
    const query = new URLSearchParams({ prefix: this.#prefix + normalized })
    const response = await this.#connection.send({ method: 'DELETE', path: `${ROOT}?${query}`, ok: [200] })
    const done = await readBody('DELETE /api/v1/storage', () => response.json() as Promise<{ deleted: number }>)
    return done.deleted
  }

  /**
   * A view of the keys under `prefix` (the keys it takes and gives are
   * relative to it) sharing this storage's connection. Its search asks the
   * service for that prefix only, so no other key can crowd out the
   * namespace's matches (the SDK's generic view filters a global search).
   */
  namespace(prefix: string): SessionBackendStorage {
    const normalized = normalizePrefix(prefix).replace(/\/$/, '')
    const scoped = normalized ? `${this.#prefix}${normalized}/` : this.#prefix
    const view = new SessionBackendStorage({ listPage: this.#listPage }, { connection: this.#connection, prefix: scoped })
    Object.defineProperty(view, NAMESPACED, { value: true })
    return view
  }

  #path(key: string): string {
    return keyPath(normalizeKey(this.#prefix + normalizeKey(key)))
  }

  #relative(key: string): string {
    return key.startsWith(this.#prefix) ? key.slice(this.#prefix.length) : key
  }

  /** Passes a 404 of a missing key; throws for a 404 that says the URL is no route of the service. */
  async #missing(response: Response, path: string): Promise<void> {
    if (await isNoRoute(response)) {
      throw new NotFoundError(
        `${this.url}${path} is not a route of the Session Backend service: is url the service's root (e.g. http://localhost:8001)?`,
        { status: 404 },
      )
    }
  }
}
