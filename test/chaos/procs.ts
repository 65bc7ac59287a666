/**
 * Child processes of the chaos suite: spawned directly (no npm, no shell), so
 * a child's PID is the process itself and `kill -9` kills exactly it; output
 * to a log file per process; every child killed when the harness exits,
 * whatever the reason (normal end, error, SIGINT, SIGTERM, global timeout).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const live = new Set<ChildProcess>();

/** SIGKILL every child still running; safe to call more than once and from an exit handler. */
export function killAll(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

let installed = false;
/** Children die with the harness: on exit, SIGINT, SIGTERM and after `timeoutMs`. */
export function installCleanup(timeoutMs: number): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nchaos: ${sig}, killing ${live.size} children\n`);
      killAll();
      process.exit(130);
    });
  }
  const timer = setTimeout(() => {
    process.stderr.write(`\nchaos: global timeout of ${Math.round(timeoutMs / 1000)} s reached, killing ${live.size} children\n`);
    killAll();
    process.exit(3);
  }, timeoutMs);
  timer.unref();
}

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  logPath: string;
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  exited: Promise<number | string>;
  /** The last 64 KiB of its stdout and stderr. */
  tail(): string;
  alive(): boolean;
}

export interface SpawnOptions {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  logPath: string;
}

export function spawnProc(o: SpawnOptions): Proc {
  const child = spawn(o.command, o.args, { cwd: o.cwd, env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`${o.name}: could not spawn ${o.command}`);
  live.add(child);
  const log = createWriteStream(o.logPath, { flags: 'a' });
  let buf = '';
  let gone = false;
  const onData = (d: Buffer): void => {
    log.write(d);
    buf += d.toString('utf8');
    if (buf.length > 65_536) buf = buf.slice(-65_536);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      gone = true;
      live.delete(child);
      log.end();
      resolve(code ?? signal ?? 'unknown');
    });
  });
  return { name: o.name, child, pid: child.pid, logPath: o.logPath, exited, tail: () => buf, alive: () => !gone };
}

/** Waits (bounded) until `pattern` shows in the output; rejects when the process exits first or time runs out. */
export async function waitForOutput(p: Proc, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const m = p.tail().match(pattern);
    if (m) return m;
    if (!p.alive()) throw new Error(`${p.name} (pid ${p.pid}) exited before ready: ${p.tail().slice(-600)}`);
    await sleep(50);
  }
  throw new Error(`${p.name} (pid ${p.pid}) not ready within ${timeoutMs} ms (log ${p.logPath}): ${p.tail().slice(-600)}`);
}

/** Sends a signal and waits (bounded) until the process is gone; SIGKILL if a gentler signal did not do it. */
export async function stopProc(p: Proc, signal: NodeJS.Signals, timeoutMs = 15_000): Promise<number | string> {
  if (!p.alive()) return p.exited;
  p.child.kill(signal);
  const timer = sleep(timeoutMs).then(() => 'timeout' as const);
  const r = await Promise.race([p.exited, timer]);
  if (r !== 'timeout') return r;
  p.child.kill('SIGKILL');
  return Promise.race([p.exited, sleep(5000).then(() => 'unkillable')]);
}
