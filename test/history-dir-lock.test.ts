/**
 * The embedded archive is one process's (src/history/dir-lock.ts): a data
 * directory a live process holds is refused with a clear error; one left by
 * a process that is gone is taken over, and released on close.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openHistory } from '../src/history/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'rbm-history-lock-'));
const log = { info: () => {}, warn: () => {} };
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the embedded archive directory', () => {
  it('is refused while another live process holds it, taken over from a dead one, and released on close', async () => {
    const lock = join(dir, 'rbm-dispatch.pid');
    // The parent of this test process is alive: its lock stands.
    writeFileSync(lock, String(process.ppid));
    await expect(openHistory({ dataDir: dir, log })).rejects.toMatchObject({
      code: 'HISTORY_UNAVAILABLE',
      message: expect.stringContaining(`in use by process ${process.ppid}`),
    });
    // A process that has exited: its lock is stale.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    writeFileSync(lock, gone);
    const store = await openHistory({ dataDir: dir, log });
    expect(existsSync(lock)).toBe(true);
    await store.close();
    expect(existsSync(lock)).toBe(false);
  });
});
