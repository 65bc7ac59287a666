/**
 * The emulator's clock: every delayed platform action (delivery, READ, TTL
 * expiry, webhook attempts and retries) is a task in one min-heap behind a
 * single unref'd timer, so thousands of pending messages cost one timer and
 * reset/close clear them all at once.
 */

interface Task {
  at: number;
  /** Ties run in scheduling order. */
  seq: number;
  run: (at: number) => void;
}

/** setTimeout's ceiling; a longer delay would fire after 1 ms (TimeoutOverflowWarning). */
const MAX_TIMER_MS = 2_147_483_647;

export class Scheduler {
  private heap: Task[] = [];
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** When the armed timer fires; Infinity when none is armed. */
  private armedAt = Infinity;

  get size(): number {
    return this.heap.length;
  }

  /**
   * Runs `run(at)` once the clock reaches `at` (ms since the epoch). `at` is the
   * action's time on the emulator's clock, even when the timer fires late.
   */
  at(at: number, run: (at: number) => void): void {
    this.push({ at, seq: this.seq++, run });
    if (at < this.armedAt) this.arm(Date.now());
  }

  /**
   * Runs every task due by `now`, in time order (tasks they schedule at or
   * before `now` included). Callers use it before deciding anything a due task
   * could change, so a late timer never makes the answer depend on it.
   */
  runDue(now = Date.now()): void {
    for (;;) {
      const head = this.heap[0];
      if (head === undefined || head.at > now) break;
      this.pop();
      try {
        head.run(head.at);
      } catch (err) {
        // A failing task is an emulator bug: say so loudly, but keep the rest of the clock running.
        process.emitWarning(err instanceof Error ? err : new Error(String(err)), 'EmulatorTaskFailed');
      }
    }
  }

  clear(): void {
    this.heap = [];
    this.disarm();
  }

  private fire = (): void => {
    this.timer = undefined;
    this.immediate = undefined;
    this.armedAt = Infinity;
    const now = Date.now();
    this.runDue(now);
    if (this.heap.length > 0) this.arm(now);
  };

  private arm(now: number): void {
    const head = this.heap[0];
    if (head === undefined) return;
    this.disarm();
    this.armedAt = head.at;
    // Due now: after the current I/O (the 200 answer goes out first), not 1 ms later.
    if (head.at <= now) {
      this.immediate = setImmediate(this.fire);
      this.immediate.unref();
      return;
    }
    this.timer = setTimeout(this.fire, Math.min(head.at - now, MAX_TIMER_MS));
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    this.armedAt = Infinity;
  }

  private push(t: Task): void {
    const h = this.heap;
    let i = h.length;
    h.push(t);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent] as Task;
      if (!before(t, p)) break;
      h[i] = p;
      i = parent;
    }
    h[i] = t;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop() as Task;
    if (h.length === 0) return;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(h[r] as Task, h[l] as Task) ? r : l;
      const c = h[child] as Task;
      if (!before(c, last)) break;
      h[i] = c;
      i = child;
    }
    h[i] = last;
  }
}

const before = (a: Task, b: Task): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);
