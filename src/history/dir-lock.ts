/**
 * The embedded archive is one process's: PGlite has no locking between
 * processes, and two writing one data directory would corrupt it. A lock file
 * holds the owner's pid; one left by a process that is gone is taken over.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HistoryError } from './errors.ts';

const LOCK_FILE = 'rbm-dispatch.pid';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the directory for this process; throws HISTORY_UNAVAILABLE when a live process holds it. Returns the release. */
export function lockDataDir(dataDir: string): () => void {
  const path = join(dataDir, LOCK_FILE);
  for (let tries = 0; tries < 2; tries++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSync(path, 'utf8'));
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
        throw new HistoryError(
          'HISTORY_UNAVAILABLE',
          `the embedded history archive at ${dataDir} is in use by process ${owner}: ` +
            'set DATABASE_URL (shared by every process), or another HISTORY_DATA_DIR',
        );
      }
      rmSync(path, { force: true });
    }
  }
  throw new HistoryError('HISTORY_UNAVAILABLE', `could not lock the embedded history archive at ${dataDir}`);
}
