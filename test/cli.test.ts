/**
 * The `rbm-dispatch` command line as a user runs it: child processes against
 * the whole service (workers/all.ts, as npm start runs it) on free ports, a
 * real Redis and the built-in emulator. Exit codes are the contract here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenSource, loadServiceAccountKey } from '../src/rbm/auth.ts';
import { Webhook } from 'standardwebhooks';
import { dropKeys, redisUrl, runCli, spawnService, startCallbackReceiver, uniquePrefix, waitFor, freePort, lineOf } from './helpers.ts';

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

let service: ChildProcess | undefined;
let base = '';
const prefix = uniquePrefix('cli');
const PHONE = '+12223334444';

/** A CLI process pointed at the service under test, and its run to the end. */
function cliProcess(...args: string[]): { proc: ChildProcess; done: Promise<Ran> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'workers/cli.ts', ...args], {
    env: { ...process.env, RBM_DISPATCH_URL: base, RBM_DISPATCH_API_KEY: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const done = new Promise<Ran>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('error', reject);
    proc.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { proc, done };
}

/** One CLI run to its end. */
const cli = (...args: string[]): Promise<Ran> => cliProcess(...args).done;

/** Changes a phone of the service's built-in emulator. */
async function emulatorPhone(e164: string, patch: Record<string, unknown>): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${emulatorPort}/_emulator/phones/${encodeURIComponent(e164)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(patch),
  });
  expect(res.status).toBe(200);
}

const json = <T>(ran: Ran): T => JSON.parse(ran.stdout.trim().split('\n').at(-1)!) as T;
const get = async <T>(path: string): Promise<{ status: number; body: T }> => {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, body: (await res.json()) as T };
};

let dir = '';
let emulatorPort = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rbm-cli-'));
  const port = await freePort();
  emulatorPort = await freePort();
  service = spawnService({
    PORT: String(port),
    RBM_EMULATOR_PORT: String(emulatorPort),
    REDIS_URL: redisUrl(),
    QUEUE_PREFIX: prefix,
    API_KEYS: '',
    RBM_AGENTS: '',
  });
  await lineOf(service, /rbm-dispatch is up/);
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  if (service && service.exitCode === null) {
    const exited = new Promise((resolve) => service!.once('exit', resolve));
    service.kill('SIGTERM');
    await exited;
  }
  await dropKeys(prefix);
  await rm(dir, { recursive: true, force: true });
});

describe('rbm-dispatch CLI', () => {
  it('--help of every command exits 0 and names the exit codes', async () => {
    const names = ['0  success', '1  the service refused', '2  bad usage', '3  not found', '4  revoke not possible'];
    // One real process for the exit status; the other commands in-process (main() is what the entry runs), sparing the CPU of six more.
    const top = await cli('--help');
    expect(top.code).toBe(0);
    for (const line of names) expect(top.stdout).toContain(line);
    for (const command of [
      'send',
      'batch',
      'status',
      'revoke',
      'failures',
      'failures list',
      'failures retry',
      'report',
      'callbacks',
      'callbacks show',
      'callbacks set',
      'callbacks remove',
      'callbacks replay',
      'emulator',
      'keyfile',
    ]) {
      const ran = await runCli(...command.split(' '), '--help');
      expect(ran.code, command).toBe(0);
      expect(ran.stdout).toMatch(new RegExp(`Usage: rbm-dispatch ${command}`));
      for (const line of names) expect(ran.stdout).toContain(line);
    }
    expect(await runCli('send', '--text', 'no recipient')).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/required option '--to/),
    });
  });

  it('send queues a message; status shows it, masked, and --watch follows it to READ', async () => {
    // The phone is offline, so the message waits at SENT until the watcher is running: a CLI process can take
    // seconds to start on a busy machine, and the emulator would otherwise have delivered and read it by then.
    await emulatorPhone(PHONE, { online: false });
    const sent = await cli('send', '--to', PHONE, '--text', 'Your order has shipped', '--traffic-type', 'transaction', '--ttl', '10m');
    expect(sent.code).toBe(0);
    const [messageId, state] = sent.stdout.trim().split(' ');
    expect(messageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(state).toBe('QUEUED');

    const watcher = cliProcess('status', messageId!, '--watch', '--interval', '100');
    // Its first print (the summary, then the timeline) shows the state before delivery; only then does the phone come online.
    await lineOf(watcher.proc, /^timeline:/);
    await emulatorPhone(PHONE, { online: true });
    const watched = await watcher.done;
    expect(watched.code).toBe(0);
    expect(watched.stdout).toMatch(/^state\s+(QUEUED|SENDING|SENT)$/m);
    for (const s of ['SENT', 'DELIVERED', 'READ']) expect(watched.stdout).toMatch(new RegExp(`Z  ${s}\\b`));
    expect(watched.stdout).toContain('+1222***4444');
    expect(watched.stdout + watched.stderr).not.toContain(PHONE);

    const status = await cli('--json', 'status', messageId!);
    expect(status.code).toBe(0);
    expect(json<{ state: string; timeline: Array<{ state: string }> }>(status)).toMatchObject({
      messageId,
      state: 'READ',
      to: '+1222***4444',
    });
  });

  it('failures list shows a dead letter with its reason; failures retry re-drives it', async () => {
    await fetch(`http://127.0.0.1:${emulatorPort}/_emulator/sms/faults`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ failNext: [{ kind: '400', count: 1 }] }),
    });
    const sent = await runCli('--url', base, '--json', 'send', '--to', '+15551110000', '--text', 'hi', '--sms-fallback', 'hi by SMS');
    const { messageId } = json<{ messageId: string }>(sent);
    await waitFor(
      async () => (await get<{ state: string }>(`/v1/messages/${messageId}`)).body.state,
      (st) => st === 'FALLBACK_FAILED',
    );
    const listed = await runCli('--url', base, '--json', 'failures', 'list', '--reason', 'SMS_PROVIDER');
    expect(listed.code).toBe(0);
    expect(json<{ failures: Array<{ messageId: string; reason: string }> }>(listed).failures).toEqual([
      expect.objectContaining({ messageId, reason: 'SMS_PROVIDER' }),
    ]);
    expect(listed.stdout).not.toContain('5551110000');
    // Paging: a page of one names the next; the page before the oldest failure is empty.
    const page = await runCli('--url', base, 'failures', 'list', '--limit', '1');
    const next = /^next (\d+)$/m.exec(page.stdout)?.[1];
    expect(next).toBeDefined();
    expect((await runCli('--url', base, 'failures', 'list', '--before', '1')).stdout).toBe('no failures\n');
    expect((await runCli('--url', base, 'failures', 'list', '--before', 'soon')).code).toBe(2);
    const retried = await runCli('--url', base, 'failures', 'retry', messageId);
    expect(retried).toMatchObject({ code: 0, stdout: 'retried 1\n' });
    await waitFor(
      async () => (await get<{ state: string }>(`/v1/messages/${messageId}`)).body.state,
      (st) => st === 'FALLBACK_SENT',
    );
    const again = await runCli('--url', base, 'failures', 'retry', messageId);
    expect(again.code).toBe(1);
    expect(again.stdout).toContain('it is FALLBACK_SENT, not failed');
    expect((await runCli('--url', base, 'failures', 'retry')).code).toBe(2);
  });

  it('callbacks set, show, replay and remove, with exit codes a script can trust', async () => {
    const receiver = await startCallbackReceiver();
    try {
      const set = await runCli('--url', base, '--json', 'callbacks', 'set', `${receiver.url}/cli`);
      expect(set.code).toBe(0);
      const { secret } = json<{ secret: string }>(set);
      const shown = await runCli('--url', base, 'callbacks', 'show');
      expect(shown).toMatchObject({ code: 0, stdout: `url ${receiver.url}/cli\nsecret ${secret}\n` });
      const { messageId } = json<{ messageId: string }>(
        await runCli('--url', base, '--json', 'send', '--to', '+12223334455', '--text', 'hi'),
      );
      const first = await receiver.until(4, (r) => r.body.includes(messageId));
      const replay = await runCli('--url', base, 'callbacks', 'replay', messageId);
      expect(replay).toMatchObject({ code: 0, stdout: `replaying 4 changes of ${messageId} to ${receiver.url}/cli\n` });
      const all = await receiver.until(8, (r) => r.body.includes(messageId));
      expect(
        all
          .slice(4)
          .map((r) => r.headers['webhook-id'])
          .sort(),
      ).toEqual(first.map((r) => r.headers['webhook-id']).sort());
      for (const r of all)
        expect((new Webhook(secret).verify(r.body, r.headers) as { data: { messageId: string } }).data.messageId).toBe(messageId);
      expect((await runCli('--url', base, 'callbacks', 'replay', randomUUID())).code).toBe(3);
      expect((await runCli('--url', base, 'callbacks', 'set', 'ftp://nope')).code).toBe(1);
      expect((await runCli('--url', base, 'callbacks', 'remove')).code).toBe(0);
      expect((await runCli('--url', base, 'callbacks', 'remove')).code).toBe(3);
      const plain = json<{ messageId: string }>(await runCli('--url', base, '--json', 'send', '--to', '+12223334466', '--text', 'hi'));
      await waitFor(
        async () => (await get<{ state: string }>(`/v1/messages/${plain.messageId}`)).body.state,
        (st) => st === 'READ',
      );
      const none = await runCli('--url', base, 'callbacks', 'replay', plain.messageId);
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/409 NO_CALLBACK/);
    } finally {
      await receiver.close();
    }
  });

  it('status of an unknown message exits 3; revoke of a delivered one exits 4, of an unknown one 3', async () => {
    const unknown = await cli('--json', 'status', randomUUID());
    expect(unknown.code).toBe(3);
    expect(json<{ error: { code: string; status: number } }>(unknown).error).toMatchObject({ code: 'CLI_NOT_FOUND', status: 404 });

    // A delivered message of this test's own (not the one of the test above: a failure there would show up here as a wrong exit code).
    const { messageId: delivered } = json<{ messageId: string }>(
      await runCli('--url', base, '--json', 'send', '--to', '+12223334456', '--text', 'hi'),
    );
    await waitFor(
      async () => (await get<{ state: string }>(`/v1/messages/${delivered}`)).body.state,
      (st) => st === 'DELIVERED' || st === 'READ',
    );
    const refused = await cli('revoke', delivered, '--fallback');
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/409 REVOKE_NOT_POSSIBLE/);
    expect((await cli('revoke', randomUUID())).code).toBe(3);
  });

  it('batch of 5,000 CSV lines queues 5,000 distinct messages; the same file with the same key queues none again', async () => {
    const file = join(dir, 'spring.csv');
    const rows = Array.from({ length: 5000 }, (_, i) => `+1555${String(i).padStart(6, '0')}7,Spring sale ${i},PROMOTION`);
    await writeFile(file, `to,text,trafficType\n${rows.join('\n')}\n`);

    const first = await cli('--json', 'batch', file, '--idempotency-key', 'spring-2026');
    expect(first.code, first.stderr).toBe(0);
    const summary = json<{ linesRead: number; messagesQueued: number; duplicates: number; failed: number; batchIds: string[] }>(first);
    expect(summary).toMatchObject({ linesRead: 5000, messagesQueued: 5000, duplicates: 0, failed: 0 });
    expect(summary.batchIds).toHaveLength(5);
    const totals = async (ids: string[]) => {
      const batches = await Promise.all(ids.map((id) => get<{ total: number }>(`/v1/batches/${id}`)));
      return batches.reduce((n, b) => n + b.body.total, 0);
    };
    expect(await totals(summary.batchIds)).toBe(5000);
    // Every keyed message has its own status record from the moment it is queued: 5,000 distinct IDs.
    const redis = new Redis(redisUrl());
    const records = await redis.keys(`${prefix}:status:*`);
    await redis.quit();
    expect(records.length).toBeGreaterThanOrEqual(5001);

    const again = await cli('--json', 'batch', file, '--idempotency-key', 'spring-2026', '--chunk-size', '2000');
    expect(again.code, again.stderr).toBe(0);
    expect(json(again)).toMatchObject({ linesRead: 5000, messagesQueued: 0, duplicates: 5000, failed: 0 });
    expect(await totals(summary.batchIds)).toBe(5000);
  });

  it('a file with one bad line exits 2 and sends nothing', async () => {
    const file = join(dir, 'receipts.jsonl');
    const ids = [randomUUID(), randomUUID()];
    await writeFile(
      file,
      [
        JSON.stringify({ to: PHONE, contentMessage: { text: 'one' }, messageId: ids[0] }),
        JSON.stringify({ to: PHONE, eventType: 'READ', messageId: 'user-message-1' }),
        JSON.stringify({ to: '2223334445', contentMessage: { text: 'no plus' } }),
        JSON.stringify({ to: PHONE, contentMessage: { text: 'two' }, messageId: ids[1] }),
      ].join('\n'),
    );
    const ran = await cli('batch', file);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toMatch(/line 3: to: expected an E\.164 number/);
    expect(ran.stdout).toBe('');
    for (const id of ids) expect((await get(`/v1/messages/${id}`)).status).toBe(404);
  });

  it('a chunk the service refuses stops the run: what was queued before is in the summary, exit 1', async () => {
    const file = join(dir, 'mixed.jsonl');
    const line = (text: string, extra = {}) => JSON.stringify({ to: PHONE, contentMessage: { text }, ...extra });
    await writeFile(file, [line('a'), line('b'), line('c', { agentId: 'no-such-agent' })].join('\n'));
    const ran = await cli('--json', 'batch', file, '--chunk-size', '2');
    expect(ran.code).toBe(1);
    expect(json(ran)).toMatchObject({
      linesRead: 3,
      messagesQueued: 2,
      failed: 1,
      error: { code: 'CLI_API_ERROR', message: expect.stringMatching(/400 UNKNOWN_AGENT/) },
    });
  });

  it('keyfile writes a key that `emulator --key-file` trusts: the OAuth flow gets a token from it', async () => {
    const port = await freePort();
    const key = join(dir, 'emulator-key.json');
    expect((await cli('keyfile', key, '--emulator-url', `http://127.0.0.1:${port}`)).code).toBe(0);
    expect((await cli('keyfile', key)).code).toBe(2); // no overwrite without --force

    const emulator = spawn(process.execPath, ['--import', 'tsx', 'workers/cli.ts', 'emulator', '--port', String(port), '--key-file', key], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      expect(await lineOf(emulator, /service-account key/)).toContain('(reused)');
      const token = await createTokenSource(await loadServiceAccountKey(key)).getToken();
      expect(token).toMatch(/^emu-/);
      const counters = await waitFor(
        async () => (await fetch(`http://127.0.0.1:${port}/_emulator/counters`)).json() as Promise<{ tokensIssued: number }>,
        (c) => c.tokensIssued === 1,
      );
      expect(counters.tokensIssued).toBe(1);
    } finally {
      const exited = new Promise<number | null>((resolve) => emulator.once('exit', resolve));
      emulator.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});
