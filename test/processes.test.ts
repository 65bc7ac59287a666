/**
 * The processes run apart: `api` (HTTP only), `dispatch` and `callbacks`
 * (workers only) as child processes against a real endpoint (here the
 * emulator, with a key file like Google's), a message going through all
 * three, its status callbacks verified, and a clean SIGTERM for each.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../src/emulator/index.ts';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { changeTo, dropKeys, httpCall, rcsPhone, processEnv, startCallbackReceiver, startProcess, uniquePrefix } from './helpers.ts';

const prefix = uniquePrefix('processes');
const API_KEY = 'api-key-for-process-test';
const children: ChildProcess[] = [];
let emulator: RunningEmulator | undefined;

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await emulator?.close();
  await dropKeys(prefix);
});

function start(entry: string, env: Record<string, string>): { child: ChildProcess; up: Promise<void> } {
  const started = startProcess(entry, env, /API listening|dispatch worker running|callback worker running/);
  children.push(started.child);
  return started;
}

const exitCode = (child: ChildProcess) => new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

describe('processes apart', () => {
  it('api, dispatch and callbacks, each alone, deliver a message and its callbacks together and stop cleanly', async () => {
    emulator = await startEmulator();
    const { env, port } = await processEnv(emulator, prefix, {
      RBM_AGENTS: 'agent-a:100',
      API_KEYS: `${API_KEY}:agent-a`,
      CALLBACK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
      // The callback receiver runs on this machine; a real RBM endpoint (here the emulator's URL) allows no loopback by itself.
      CALLBACK_ALLOW_HOSTS: '127.0.0.1',
    });
    const receiver = await startCallbackReceiver();
    const api = start('workers/api.ts', env);
    const dispatch = start('workers/dispatch.ts', env);
    const callbacks = start('workers/callbacks.ts', env);
    await Promise.all([api.up, dispatch.up, callbacks.up]);
    const base = `http://127.0.0.1:${port}`;
    const auth = { authorization: `Bearer ${API_KEY}` };
    expect((await httpCall(base, 'GET', '/readyz')).body).toEqual({ status: 'ready', checks: { redis: 'ok', workers: 'ok' } });
    const { secret } = (await httpCall(base, 'PUT', '/v1/callback', { url: `${receiver.url}/status` }, auth)).body;
    const sent = await httpCall(base, 'POST', '/v1/messages', { to: rcsPhone(1), contentMessage: { text: 'hi' } }, auth);
    expect(sent.status).toBe(202);
    // The SENT callback goes out after the move to SENT.
    await receiver.until(1, changeTo(sent.body.messageId, 'SENT'));
    expect((emulator.state.messages.get(sent.body.messageId) as { count: number }).count).toBe(1);
    const changes = (await receiver.until(2)).map(
      (r) => (new Webhook(secret).verify(r.body, r.headers) as { data: { state: string; at: number } }).data,
    );
    expect(changes.sort((a, b) => a.at - b.at).map((c) => c.state)).toEqual(['SENDING', 'SENT']);
    const exits = [exitCode(api.child), exitCode(dispatch.child), exitCode(callbacks.child)];
    api.child.kill('SIGTERM');
    dispatch.child.kill('SIGTERM');
    callbacks.child.kill('SIGTERM');
    expect(await Promise.all(exits)).toEqual([0, 0, 0]);
    await receiver.close();
  });
});
