/**
 * Snapshots across the SDKs: one service, an agent in Python (the real
 * strands-agents and this repository's Python client, from
 * `PYTHON_CLIENT_PYTHON`) and one in TypeScript, on the same key layout.
 *
 * What we found (strands-agents 1.62, @strands-agents/sdk 1.19): both
 * managers use `session/<id>/scopes/agent/<agent>/snapshots/…` and the same
 * message shape (role, content blocks), but the snapshot envelopes differ
 * (snake_case `schema_version`/`created_at`/`tracking_id` against camelCase
 * `schemaVersion`/`createdAt`/`trackingId`, and different agent-state fields),
 * so each SDK refuses the other's snapshot. These tests pin that down, and
 * that the conversation itself reads the same from either side.
 */

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'

import { Agent, SessionManager } from '@strands-agents/sdk'

import { SessionBackendStorage } from '../src/index.js'
import { ScriptedModel } from './scripted-model.js'
import { type Service, start } from './service.js'

/** The Python client's tests, for its scripted model. */
const PYTHON_TESTS = join(dirname(fileURLToPath(import.meta.url)), '../../../python/tests')

let service: Service
before(async () => {
  service = await start()
})
after(() => service.stop())

/** Runs `code` in the Python client's venv against the service; its stdout. */
function python(code: string): string {
  const interpreter = process.env.PYTHON_CLIENT_PYTHON
  if (!interpreter) {
    throw new Error('set PYTHON_CLIENT_PYTHON to a Python with strands-agents and strands-session-backend')
  }
  return execFileSync(interpreter, ['-c', code], {
    encoding: 'utf8',
    env: { ...process.env, SESSION_BACKEND_URL: service.url, PYTHONPATH: PYTHON_TESTS },
  })
}

const PY_AGENT = `
from strands import Agent
from strands.session import SnapshotSessionManager
from conftest import ScriptedModel
from strands_session_backend import SessionBackendStorage

def agent(session_id, replies=()):
    manager = SnapshotSessionManager(session_id=session_id, storage=SessionBackendStorage())
    model = ScriptedModel([[{"text": r}] for r in replies])
    return Agent(agent_id="agent", model=model, session_manager=manager, callback_handler=None)
`

type Stored = { data: { messages: { role: string; content: unknown[] }[] } } & Record<string, unknown>

async function latest(sessionId: string): Promise<Stored> {
  const storage = new SessionBackendStorage({ url: service.url })
  const bytes = await storage.read(`session/${sessionId}/scopes/agent/agent/snapshots/snapshot_latest.json`)
  assert.ok(bytes, `no snapshot of ${sessionId}`)
  return JSON.parse(new TextDecoder().decode(bytes)) as Stored
}

const conversation = (snapshot: Stored) => snapshot.data.messages.map(({ role, content }) => ({ role, content }))

test('a Python snapshot: the same conversation, an envelope the TypeScript SDK refuses', async () => {
  python(`${PY_AGENT}\nagent("py-first", ["hi from python"])("hello")\n`)
  const snapshot = await latest('py-first')
  assert.equal(snapshot.schema_version, '1.0')
  assert.deepEqual(conversation(snapshot), [
    { role: 'user', content: [{ text: 'hello' }] },
    { role: 'assistant', content: [{ text: 'hi from python' }] },
  ])
  const storage = new SessionBackendStorage({ url: service.url })
  const agent = new Agent({
    id: 'agent',
    model: new ScriptedModel(),
    sessionManager: new SessionManager({ sessionId: 'py-first', storage }),
    printer: false,
  })
  await assert.rejects(agent.invoke('next'), /schema version/)
})

test('a TypeScript snapshot: the same conversation, an envelope the Python SDK refuses', async () => {
  const storage = new SessionBackendStorage({ url: service.url })
  const agent = new Agent({
    id: 'agent',
    model: new ScriptedModel(['hi from typescript']),
    sessionManager: new SessionManager({ sessionId: 'ts-first', storage }),
    printer: false,
  })
  await agent.invoke('hello')
  const snapshot = await latest('ts-first')
  assert.equal(snapshot.schemaVersion, '1.0')
  assert.deepEqual(conversation(snapshot), [
    { role: 'user', content: [{ text: 'hello' }] },
    { role: 'assistant', content: [{ text: 'hi from typescript' }] },
  ])
  const refused = python(`${PY_AGENT}
from strands.types.exceptions import SnapshotException
try:
    agent("ts-first")
    print("restored")
except SnapshotException as error:
    print("refused", error)
`)
  assert.match(refused, /^refused .*created_at/)
})
