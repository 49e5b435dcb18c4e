/** The storage against the real binary: the SDK's `Storage` contract, search, namespaces, errors. */

import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'

import { StorageError } from '@strands-agents/sdk'

import {
  InvalidRequestError,
  NotFoundError,
  SessionBackendStorage,
  UnauthorizedError,
  UnavailableError,
} from '../src/index.js'
import { type Service, start, startWithKeys } from './service.js'

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
const text = (data: Uint8Array | null | undefined): string | undefined =>
  data ? new TextDecoder().decode(data) : undefined

describe('SessionBackendStorage', () => {
  let service: Service
  before(async () => {
    service = await start()
  })
  after(() => service.stop())

  test('values round trip as bytes; missing keys read as null', async () => {
    const storage = new SessionBackendStorage({ url: service.url })
    const every = Uint8Array.from({ length: 256 }, (_, i) => i)
    await storage.write('bytes/every', every)
    assert.deepEqual(await storage.read('bytes/every'), every)
    const large = Uint8Array.from({ length: 3 * 1024 * 1024 + 7 }, (_, i) => (i * 31) & 0xff)
    await storage.write('bytes/large', large)
    assert.deepEqual(await storage.read('bytes/large'), large)
    await storage.write('bytes/empty', new Uint8Array())
    assert.deepEqual(await storage.read('bytes/empty'), new Uint8Array())
    assert.equal(await storage.read('bytes/none'), null)
    await storage.delete('bytes/every')
    await storage.delete('bytes/every')
    assert.equal(await storage.read('bytes/every'), null)
  })

  test('keys normalise as the SDK does; bad keys are refused and store nothing', async () => {
    const storage = new SessionBackendStorage({ url: service.url })
    await storage.write('//norm//a/', bytes('x'))
    assert.equal(text(await storage.read('norm/a')), 'x')
    assert.deepEqual(await storage.list('norm'), ['norm/a'])
    await storage.write('odd/ä ?#%&+.', bytes('y'))
    assert.deepEqual(await storage.list('odd/'), ['odd/ä ?#%&+.'])
    await storage.write('.', bytes('dot'))
    assert.equal(text(await storage.read('.')), 'dot')
    assert.ok((await storage.list('')).includes('.'))
    for (const bad of ['', '/', 'a/../b', 'a\\b']) {
      await assert.rejects(storage.write(bad, bytes('z')), (e) => e instanceof InvalidRequestError && e instanceof StorageError)
    }
    await assert.rejects(storage.write(`long/${'k'.repeat(1100)}`, bytes('z')), (e: InvalidRequestError) => e.status === 422)
    assert.deepEqual(await storage.list('long'), [])
  })

  test('listing is ascending and pages through every key', async () => {
    const storage = new SessionBackendStorage({ url: service.url, listPage: 3 })
    const keys = Array.from({ length: 10 }, (_, i) => `page/k${String(9 - i)}`)
    await Promise.all(keys.map((key) => storage.write(key, bytes(key))))
    assert.deepEqual(await storage.list('page/'), [...keys].sort())
    assert.equal(await storage.deletePrefix('page/'), 10)
    assert.deepEqual(await storage.list('page/'), [])
  })

  test('search ranks on the service and brings the values', async () => {
    const storage = new SessionBackendStorage({ url: service.url })
    await storage.write('notes/a', bytes('Paris weather: rainy, Paris again'))
    await storage.write('notes/b', bytes('croissants in Paris'))
    await storage.write('elsewhere/c', bytes('Paris Paris Paris'))
    const hits = await storage.search('paris', { prefix: 'notes/' })
    assert.deepEqual(hits.map((h) => h.key), ['notes/a', 'notes/b'])
    assert.ok(hits[0]!.score >= hits[1]!.score)
    assert.equal(text(hits[1]!.data), 'croissants in Paris')
    const bare = await storage.search('croissants', { withValues: false })
    assert.deepEqual(bare.map((h) => [h.key, h.data]), [['notes/b', undefined]])
  })

  test('a namespace scopes keys, listing and search on the service', async () => {
    const storage = new SessionBackendStorage({ url: service.url })
    const memory = storage.namespace('ns/mem')
    assert.equal((memory as unknown as Record<symbol, unknown>)[Symbol.for('strands.storage.namespaced')], true)
    await memory.write('fact.md', bytes('window seats please'))
    for (let i = 0; i < 30; i++) {
      await storage.write(`ns/other/${i}`, bytes('window window seats seats'))
    }
    assert.deepEqual(await memory.list(''), ['fact.md'])
    assert.equal(text(await storage.read('ns/mem/fact.md')), 'window seats please')
    const hits = await memory.search('window seats', { limit: 5 })
    assert.deepEqual(hits.map((h) => [h.key, text(h.data)]), [['fact.md', 'window seats please']])
    assert.deepEqual(await memory.namespace('deeper').list(''), [])
  })

  test('a wrong URL is named as such', async () => {
    assert.throws(() => new SessionBackendStorage({ url: `${service.url}/api/v1` }), /names the API's path/)
    assert.throws(() => new SessionBackendStorage({ url: 'localhost:8001' }), /http\(s\) URL/)
    const wrong = new SessionBackendStorage({ url: `${service.url}/base` })
    await assert.rejects(wrong.read('k'), (e) => e instanceof NotFoundError && /not a route/.test(e.message))
    const gone = new SessionBackendStorage({ url: 'http://127.0.0.1:9', retries: 1 })
    await assert.rejects(gone.read('k'), (e) => e instanceof UnavailableError && e instanceof StorageError)
  })

  test('an answer cut short is a StorageError', async () => {
    const cut = createServer((_request, response) => {
      response.writeHead(200, { 'content-length': '100000' })
      response.write('only the start')
      setTimeout(() => response.socket?.destroy(), 20)
    })
    await new Promise<void>((resolve) => cut.listen(0, '127.0.0.1', resolve))
    const { port } = cut.address() as AddressInfo
    try {
      const storage = new SessionBackendStorage({ url: `http://127.0.0.1:${port}`, retries: 0 })
      await assert.rejects(storage.read('k'), (e) => e instanceof UnavailableError && e instanceof StorageError)
    } finally {
      cut.closeAllConnections()
      await new Promise((resolve) => cut.close(resolve))
    }
  })

  test('the URL and key come from the environment', async () => {
    process.env.SESSION_BACKEND_URL = service.url
    try {
      const storage = new SessionBackendStorage()
      await storage.write('env/k', bytes('from env'))
      assert.equal(text(await storage.read('env/k')), 'from env')
    } finally {
      delete process.env.SESSION_BACKEND_URL
    }
    assert.throws(() => new SessionBackendStorage(), /SESSION_BACKEND_URL/)
  })
})

describe('with API keys', () => {
  let service: Service
  let keys: string[]
  before(async () => {
    ;({ service, keys } = await startWithKeys(['team-a', 'team-b']))
  })
  after(() => service.stop())

  test('each tenant sees its own keys; no key is refused', async () => {
    const [a, b] = keys as [string, string]
    const mine = new SessionBackendStorage({ url: service.url, apiKey: a })
    const theirs = new SessionBackendStorage({ url: service.url, apiKey: b })
    await mine.write('secret', bytes('vault code 4711'))
    assert.equal(await theirs.read('secret'), null)
    assert.deepEqual(await theirs.search('vault'), [])
    assert.deepEqual((await mine.search('vault')).map((h) => text(h.data)), ['vault code 4711'])
    const anonymous = new SessionBackendStorage({ url: service.url })
    await assert.rejects(anonymous.read('secret'), (e) => e instanceof UnauthorizedError && e.status === 401)
    process.env.SESSION_BACKEND_API_KEY = a
    try {
      assert.equal(text(await new SessionBackendStorage({ url: service.url }).read('secret')), 'vault code 4711')
    } finally {
      delete process.env.SESSION_BACKEND_API_KEY
    }
  })
})
