/**
 * Redis dies under a running service (`npm start`, every worker and both
 * stream consumers) and comes back empty on the same port: while it is gone
 * the process writes a handful of lines, not a flood; when it is back a new
 * message goes all the way to DELIVERED, which needs the dispatch worker and
 * the webhook stream's consumer (whose group the empty Redis no longer has).
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, httpCall, lineOf, rcsPhone, spawnService, waitFor } from './helpers.ts';
import { startRedisServer, stopAll } from './redis-servers.ts';

let child: ChildProcess | undefined;
afterAll(async () => {
  child?.kill('SIGKILL');
  await stopAll();
});

/** The most lines the whole process may write in the measured seconds of the outage. */
const MAX_LINES = 20;
const OUTAGE_MS = 3000;

describe('a Redis that dies and comes back', () => {
  it('costs a few log lines while gone, and the service delivers again once it is back', async () => {
    let redis = await startRedisServer();
    const [port, emulatorPort] = [await freePort(), await freePort()];
    child = spawnService({ PORT: String(port), RBM_EMULATOR_PORT: String(emulatorPort), REDIS_URL: redis.url });
    const lines: Array<{ at: number; text: string }> = [];
    for (const stream of [child.stdout!, child.stderr!]) {
      let rest = '';
      stream.on('data', (d: Buffer) => {
        const parts = (rest + d.toString()).split('\n');
        rest = parts.pop()!;
        for (const text of parts) lines.push({ at: Date.now(), text });
      });
    }
    await lineOf(child, /rbm-dispatch is up/);
    const base = `http://127.0.0.1:${port}`;
    const deliver = async (n: number, until: readonly string[]) => {
      // The API answers 503 until its fail-fast connection is back.
      const sent = await waitFor(
        () => httpCall(base, 'POST', '/v1/messages', { to: rcsPhone(n), contentMessage: { text: `hello ${n}` } }),
        (r) => r.status === 202,
        30_000,
      );
      return waitFor(
        async () => (await httpCall(base, 'GET', `/v1/messages/${sent.body.messageId}`)).body?.state,
        (s) => until.includes(s),
        30_000,
      );
    };
    // READ (the demo reads 2 s after delivery): no webhook of it is still on its way when Redis dies.
    await deliver(1, ['READ']);

    const killedAt = Date.now();
    redis.child.kill('SIGKILL');
    await redis.exited;
    await new Promise((r) => setTimeout(r, OUTAGE_MS)); // the measured window itself
    const during = lines.filter((l) => l.at >= killedAt);
    console.info(
      `redis outage: ${during.length} lines in ${Date.now() - killedAt} ms:\n${during.map((l) => l.text.slice(0, 200)).join('\n')}`,
    );
    expect(during.length).toBeLessThanOrEqual(MAX_LINES);

    redis = await startRedisServer([], redis.port);
    const backAt = Date.now();
    await deliver(2, ['DELIVERED', 'READ']);
    const recovered = Date.now() - backAt;
    // Each HTTP call of the polling above logs two lines of its own: those are traffic, not the outage.
    const since = lines.filter((l) => l.at >= killedAt && !l.text.includes('"reqId"'));
    console.info(
      `redis back: a new message DELIVERED ${recovered} ms after the restart; ${since.length} lines (HTTP request logs aside) since the kill:\n${since.map((l) => l.text.slice(0, 300)).join('\n')}`,
    );
    expect(child.exitCode).toBeNull();

    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    const stoppedAt = Date.now();
    child.kill('SIGTERM');
    const code = await exited;
    // A shutdown that fails says why: every line it wrote.
    const stopping = lines.filter((l) => l.at >= stoppedAt).map((l) => l.text.slice(0, 300));
    expect(code, `exit after SIGTERM in ${Date.now() - stoppedAt} ms:\n${stopping.join('\n')}`).toBe(0);
    child = undefined;
  }, 120_000);
});
