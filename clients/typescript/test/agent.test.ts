/** A Strands agent persisted through the SDK's snapshot SessionManager on the service and restored. */

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'

import { Agent, SessionManager } from '@strands-agents/sdk'

import { SessionBackendStorage } from '../src/index.js'
import { ScriptedModel } from './scripted-model.js'
import { type Service, start } from './service.js'

let service: Service
before(async () => {
  service = await start()
})
after(() => service.stop())

/** An agent as a fresh process would build it: new storage, new manager. */
function agent(sessionId: string): Agent {
  const storage = new SessionBackendStorage({ url: service.url })
  return new Agent({
    model: new ScriptedModel(),
    sessionManager: new SessionManager({ sessionId, storage }),
    printer: false,
  })
}

test('an agent restores its conversation from the service', async () => {
  const first = agent('ts-restore')
  await first.invoke('hello')
  await first.invoke('how many?')
  const written = first.messages.map((m) => m.toJSON())
  assert.equal(written.length, 4)

  const restarted = agent('ts-restore')
  const reply = await restarted.invoke('and now?')
  assert.deepEqual(restarted.messages.slice(0, 4).map((m) => m.toJSON()), written)
  assert.match(String(reply), /seen 5/)

  const keys = await new SessionBackendStorage({ url: service.url }).list('session/ts-restore/')
  assert.ok(keys.some((key) => key.endsWith('/snapshots/snapshot_latest.json')), keys.join('\n'))
})

test('sessions are apart', async () => {
  await agent('ts-one').invoke('only in one')
  const other = agent('ts-two')
  await other.invoke('in two')
  assert.equal(other.messages.length, 2)
})
