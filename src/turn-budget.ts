/**
 * CPU-bound loops on the request path (validating a 10,000-item batch) share
 * one budget per turn of the event loop: TURN_BUDGET_MS in all, split evenly
 * among the loops running. However many bad batches arrive at once, the rest
 * of the process (health checks, webhooks, the workers' lock renewals and
 * sends) gets a turn every few milliseconds, and the batches share what is
 * left fairly among themselves.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * Loops' time per turn, all together. Small, since a worker's job needs many
 * turns (a Redis call, an HTTP call, another Redis call...): every ms the
 * loops hold a turn slows those down. Large enough that one batch of
 * 10,000 bad items still finishes in well under a second when alone.
 */
const TURN_BUDGET_MS = 4;
let running = 0;

export interface Pacer {
  /** Whether this loop's share of the turn is used up: then `await nextTurn()`. */
  due(): boolean;
  /** Gives the event loop a turn (I/O, timers) and starts a new share. */
  nextTurn(): Promise<void>;
  /** The loop is over (call in `finally`). */
  end(): void;
}

export function startPacer(): Pacer {
  running += 1;
  let started = performance.now();
  let ended = false;
  return {
    due: () => performance.now() - started >= TURN_BUDGET_MS / running,
    async nextTurn() {
      await nextTurn();
      started = performance.now();
    },
    end() {
      if (ended) return;
      ended = true;
      running -= 1;
    },
  };
}
