/**
 * Error lines that can repeat per attempt (a worker's fetch loop, a queue's
 * connection, a stream consumer) go through here, so that a Redis outage or a
 * wrong Redis writes a few lines a second instead of tens of thousands.
 *
 * Per kind (the message and the error text, digits ignored so that job IDs do
 * not make every line new): the first occurrence is logged at once; repeats
 * are counted and logged as one summary line, "N more in the last Xs", when
 * the window ends. A kind that keeps repeating gets longer windows (doubling
 * up to maxWindowMs), so an hour-long outage costs dozens of lines, not
 * thousands; a kind that goes quiet is forgotten and logs at once next time.
 * New kinds beyond maxKindsPerSec in one second are folded into one line too.
 */
/** pino's Logger, or the handlers' narrower one. */
export interface LineLogger {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface LogThrottleOptions {
  windowMs?: number;
  maxWindowMs?: number;
  maxKindsPerSec?: number;
}

type Level = 'error' | 'warn';

interface Kind {
  level: Level;
  msg: string;
  err: string;
  repeats: number;
  sources: Set<string>;
  windowMs: number;
  timer: NodeJS.Timeout;
}

const SOURCES_SHOWN = 10;

export class LogThrottle {
  private readonly kinds = new Map<string, Kind>();
  private readonly windowMs: number;
  private readonly maxWindowMs: number;
  private readonly maxKindsPerSec: number;
  private secondStart = 0;
  private newKindsThisSecond = 0;
  private folded: { count: number; kinds: Set<string>; timer: NodeJS.Timeout } | undefined;

  constructor(
    private readonly log: LineLogger,
    opts: LogThrottleOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? 1000;
    this.maxWindowMs = opts.maxWindowMs ?? 30_000;
    this.maxKindsPerSec = opts.maxKindsPerSec ?? 5;
  }

  error(msg: string, err: unknown, source?: string): void {
    this.record('error', msg, err, source);
  }

  warn(msg: string, err: unknown, source?: string): void {
    this.record('warn', msg, err, source);
  }

  private record(level: Level, msg: string, error: unknown, source: string | undefined): void {
    const err = error instanceof Error ? error.message : String(error);
    const key = `${level}|${msg}|${err.replace(/\d+/g, '#')}`;
    const known = this.kinds.get(key);
    if (known) {
      known.repeats++;
      if (source !== undefined && known.sources.size < SOURCES_SHOWN) known.sources.add(source);
      return;
    }
    const now = Date.now();
    if (now - this.secondStart >= 1000) {
      this.secondStart = now;
      this.newKindsThisSecond = 0;
    }
    if (++this.newKindsThisSecond > this.maxKindsPerSec) {
      this.fold(msg);
      return;
    }
    this.log[level]({ err, ...(source !== undefined ? { source } : {}) }, msg);
    const kind: Kind = {
      level,
      msg,
      err,
      repeats: 0,
      sources: new Set(),
      windowMs: this.windowMs,
      timer: this.schedule(key, this.windowMs),
    };
    this.kinds.set(key, kind);
  }

  private schedule(key: string, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.closeWindow(key), ms);
    // A summary still to come must not keep a stopping process alive.
    timer.unref();
    return timer;
  }

  private closeWindow(key: string): void {
    const kind = this.kinds.get(key);
    if (!kind) return;
    if (kind.repeats === 0) {
      this.kinds.delete(key);
      return;
    }
    const seconds = kind.windowMs / 1000;
    this.log[kind.level](
      { err: kind.err, repeats: kind.repeats, windowMs: kind.windowMs, ...(kind.sources.size ? { sources: [...kind.sources] } : {}) },
      `${kind.msg} (${kind.repeats} more in the last ${seconds}s)`,
    );
    kind.repeats = 0;
    kind.sources.clear();
    kind.windowMs = Math.min(kind.windowMs * 2, this.maxWindowMs);
    kind.timer = this.schedule(key, kind.windowMs);
  }

  private fold(msg: string): void {
    if (!this.folded) {
      const timer = setTimeout(() => {
        const f = this.folded!;
        this.folded = undefined;
        this.log.error({ repeats: f.count, examples: [...f.kinds] }, `${f.count} more errors of other kinds in the last 1s`);
      }, 1000);
      timer.unref();
      this.folded = { count: 0, kinds: new Set(), timer };
    }
    this.folded.count++;
    if (this.folded.kinds.size < SOURCES_SHOWN) this.folded.kinds.add(msg);
  }
}

const perLogger = new WeakMap<LineLogger, LogThrottle>();

/** The throttle of a logger: every part logging through the same logger shares one, so kinds fold across queues. */
export function throttled(log: LineLogger): LogThrottle {
  let throttle = perLogger.get(log);
  if (!throttle) {
    throttle = new LogThrottle(log);
    perLogger.set(log, throttle);
  }
  return throttle;
}
