/** The real `session-backend` binary, started for a test on a port it chooses. */

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

/** A running service. */
export interface Service {
  url: string
  dir: string
  stop(): Promise<void>
}

/** The binary under test: `SESSION_BACKEND_BIN` (CI sets it to the release build). */
export function binary(): string {
  const path = process.env.SESSION_BACKEND_BIN
  if (!path) {
    throw new Error('set SESSION_BACKEND_BIN to the session-backend binary')
  }
  return path
}

/** Starts the binary on an embedded SQLite in a fresh directory, with `env` added. */
export async function start(env: Record<string, string> = {}): Promise<Service> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-ts-'))
  const child = spawn(binary(), ['serve', '--host', '127.0.0.1', '--port', '0'], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: `sqlite://${join(dir, 'sessions.db')}?mode=rwc`,
      LOG_LEVEL: 'error',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const url = await announced(child)
  return {
    url,
    dir,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => {
          rmSync(dir, { recursive: true, force: true })
          resolve()
        })
        child.kill('SIGTERM')
      }),
  }
}

/** The URL the binary reports on its first line of output. */
function announced(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the service did not announce its address in 30 s')), 30_000)
    const lines = createInterface({ input: child.stdout! })
    lines.on('line', (line) => {
      const found = /listening on (http:\/\/\S+)/.exec(line)
      if (found?.[1]) {
        clearTimeout(timer)
        resolve(found[1])
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`the service exited with ${code} before listening`))
    })
  })
}

/** A key for `tenant`, minted by the binary as an operator would. */
export function mint(tenant: string): { key: string; hash: string; tenant: string } {
  const out = execFileSync(binary(), ['keys', 'new', '--tenant', tenant, '--json'], { encoding: 'utf8' })
  return JSON.parse(out) as { key: string; hash: string; tenant: string }
}

/** A service that knows the keys of `tenants`. */
export async function startWithKeys(tenants: string[]): Promise<{ service: Service; keys: string[] }> {
  const minted = tenants.map(mint)
  const dir = mkdtempSync(join(tmpdir(), 'sb-ts-keys-'))
  const file = join(dir, 'keys')
  writeFileSync(file, minted.map((m) => `${m.tenant} ${m.hash}\n`).join(''))
  const service = await start({ SESSION_BACKEND_AUTH__KEYS_FILE: file })
  const stop = service.stop
  service.stop = async () => {
    await stop()
    rmSync(dir, { recursive: true, force: true })
  }
  return { service, keys: minted.map((m) => m.key) }
}
