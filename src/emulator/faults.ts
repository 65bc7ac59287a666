/**
 * Injected faults: random rates for soak tests and benchmarks, and a
 * deterministic failNext script that tests use to prove retries and
 * exactly-once (an `accept-then-*` fault records the call, then fails it).
 */
import { checkCount, checkLatencyMs, failNextEntry } from './fault-checks.ts';

/** `401`: the call's token refused, as after a key rotation or an early revocation (the token itself stays valid for later calls). */
export const FaultKinds = ['503', '500', 'reset', 'accept-then-503', 'accept-then-reset', '429', '400', '401', '403'] as const;
export type FaultKind = (typeof FaultKinds)[number];

export interface FailNextEntry {
  kind: FaultKind;
  count: number;
  retryAfterSec?: number;
  /** Only calls of this agent consume the entry. */
  agentId?: string;
  /** Only calls to this phone consume the entry. */
  phone?: string;
}

export interface FaultConfig {
  latencyMs?: number;
  status5xxRate?: number;
  resetRate?: number;
  failNext?: FailNextEntry[];
}

/** The fault one call gets; `accept-then-*` kinds are processed (recorded) before they fail. */
export interface Fault {
  kind: FaultKind;
  retryAfterSec?: number;
}

export function isAcceptThen(kind: FaultKind): boolean {
  return kind === 'accept-then-503' || kind === 'accept-then-reset';
}

export class Faults {
  latencyMs = 0;
  private status5xxRate = 0;
  private resetRate = 0;
  private failNext: FailNextEntry[] = [];

  set(config: FaultConfig): void {
    this.latencyMs = config.latencyMs ?? 0;
    this.status5xxRate = config.status5xxRate ?? 0;
    this.resetRate = config.resetRate ?? 0;
    // Copies, so consuming the script never mutates the caller's object.
    this.failNext = (config.failNext ?? []).map((e) => ({ ...e }));
  }

  clear(): void {
    this.set({});
  }

  snapshot(): Required<FaultConfig> {
    return {
      latencyMs: this.latencyMs,
      status5xxRate: this.status5xxRate,
      resetRate: this.resetRate,
      failNext: this.failNext.map((e) => ({ ...e })),
    };
  }

  /** Consumes the first matching script entry, else rolls the random rates; undefined = no fault. */
  pick(agentId: string, phone: string): Fault | undefined {
    if (this.failNext.length > 0) {
      const i = this.failNext.findIndex(
        (e) => (e.agentId === undefined || e.agentId === agentId) && (e.phone === undefined || e.phone === phone),
      );
      const entry = this.failNext[i];
      if (entry) {
        entry.count -= 1;
        if (entry.count <= 0) this.failNext.splice(i, 1);
        return entry.retryAfterSec === undefined ? { kind: entry.kind } : { kind: entry.kind, retryAfterSec: entry.retryAfterSec };
      }
    }
    if (this.resetRate > 0 && Math.random() < this.resetRate) return { kind: 'reset' };
    if (this.status5xxRate > 0 && Math.random() < this.status5xxRate) return { kind: '503' };
    return undefined;
  }
}

function rate(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new TypeError(`${name} must be a number in 0..1, got ${JSON.stringify(v)}`);
  return v;
}

/** Validates a control-API body; throws a TypeError naming the bad field. */
export function checkFaultConfig(input: unknown): FaultConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new TypeError('faults must be a JSON object');
  const raw = input as Record<string, unknown>;
  const out: FaultConfig = {};
  const latencyMs = checkLatencyMs(raw.latencyMs);
  if (latencyMs !== undefined) out.latencyMs = latencyMs;
  const s5 = rate('status5xxRate', raw.status5xxRate);
  if (s5 !== undefined) out.status5xxRate = s5;
  const rr = rate('resetRate', raw.resetRate);
  if (rr !== undefined) out.resetRate = rr;
  if (raw.failNext !== undefined) {
    if (!Array.isArray(raw.failNext)) throw new TypeError('failNext must be an array');
    out.failNext = raw.failNext.map((e: unknown, i) => {
      const entry = failNextEntry<FailNextEntry>(e, i, FaultKinds);
      const ok: FailNextEntry = { kind: entry.kind, count: checkCount(entry.count, i) };
      if (entry.retryAfterSec !== undefined) ok.retryAfterSec = entry.retryAfterSec;
      if (entry.agentId !== undefined) ok.agentId = entry.agentId;
      if (entry.phone !== undefined) ok.phone = entry.phone;
      return ok;
    });
  }
  return out;
}
