/**
 * A process's view of the agent directory: the records as last read, kept
 * fresh by polling the directory's version (one HGET every POLL_MS; the whole
 * hash is read only when it moved), so an agent added, changed or removed by
 * any process is seen by every process within POLL_MS plus one read.
 * Listeners hear each change (the dispatch workers start, restart and stop
 * agents' workers from it). A failed poll keeps the last view: a Redis blip
 * does not make agents disappear.
 */
import type { Logger } from '../handlers/types.ts';
import { throttled } from '../log-throttle.ts';
import type { AgentDirectory } from './directory.ts';
import type { AgentRecord } from './record.ts';

/** How often every process checks the directory's version (one HGET): an admin change reaches all within ~0.5 s. */
export const POLL_MS = 250;

export type AgentsListener = (next: ReadonlyMap<string, AgentRecord>, previous: ReadonlyMap<string, AgentRecord>) => void;

/** What most parts need of the agents: who may take messages now, and who ever was (lookups, history). */
export interface AgentSource {
  /** Agents that take messages. */
  activeIds(): readonly string[];
  /** Every agent with a record, removed ones too: their messages can still be looked up. */
  knownIds(): readonly string[];
  get(agentId: string): AgentRecord | undefined;
}

export class LiveAgents implements AgentSource {
  private records: ReadonlyMap<string, AgentRecord> = new Map();
  private active: readonly string[] = [];
  private known: readonly string[] = [];
  private version = -1;
  private readonly listeners = new Set<AgentsListener>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;

  private constructor(
    readonly directory: AgentDirectory,
    private readonly log: Logger | undefined,
  ) {}

  /** Reads the directory once (a failure here fails the start), then polls it every `pollMs`. */
  static async start(directory: AgentDirectory, opts: { log?: Logger; pollMs?: number } = {}): Promise<LiveAgents> {
    const live = new LiveAgents(directory, opts.log);
    await live.load();
    const pollMs = opts.pollMs ?? POLL_MS;
    live.timer = setInterval(() => {
      void live.refresh().catch((err: Error) => {
        if (live.log) throttled(live.log).warn('agent directory unreadable; the last view stays', err, 'agents');
      });
    }, pollMs);
    live.timer.unref();
    return live;
  }

  activeIds(): readonly string[] {
    return this.active;
  }

  knownIds(): readonly string[] {
    return this.known;
  }

  get(agentId: string): AgentRecord | undefined {
    return this.records.get(agentId);
  }

  all(): readonly AgentRecord[] {
    return [...this.records.values()];
  }

  /**
   * The webhook receiver's view of the agents' own client tokens. A removed agent's still verifies:
   * RBM's late DELIVERED and READ for its messages are facts to keep.
   */
  clientTokens(): { of(agentId: string): string | undefined; all(): readonly string[] } {
    return {
      of: (agentId) => this.records.get(agentId)?.clientToken,
      all: () => this.all().flatMap((r) => (r.clientToken === undefined ? [] : [r.clientToken])),
    };
  }

  /** Calls `listener` on every change from now on; returns a function that stops it. */
  onChange(listener: AgentsListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Reads the directory if its version moved (one poll; concurrent calls share it).
   * A directory that is gone after this process saw it (a Redis that restarted without its data) is written back from
   * this view, agents added at run time included: every process holds the whole of it, and the first to notice restores
   * it (each record only where none is, so several restoring at once write it once).
   */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const version = await this.directory.version();
        if (version === 0 && this.version > 0 && this.records.size > 0) {
          const restored = await this.directory.restore([...this.records.values()]);
          this.log?.warn({ restored: restored.length }, 'agent directory was gone from Redis: written back from this process');
        }
        if (version !== this.version) await this.load();
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /**
   * A read that starts after this call (refresh() may hand back a poll already under way, which can
   * predate a write just made): the admin API calls it after each write, so this process's next request sees it.
   */
  async refreshNow(): Promise<void> {
    await this.refreshing?.catch(() => undefined);
    return this.refresh();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }

  private async load(): Promise<void> {
    const { version, records } = await this.directory.read();
    const previous = this.records;
    this.records = new Map(records.map((r) => [r.agentId, r]));
    this.active = records.filter((r) => !r.removed).map((r) => r.agentId);
    this.known = records.map((r) => r.agentId);
    this.version = version;
    for (const listener of this.listeners) {
      try {
        listener(this.records, previous);
      } catch (err) {
        this.log?.error({ err }, 'agent directory listener failed');
      }
    }
  }
}

/** A fixed set of agents (a library user's or a test's): no Redis, no changes. */
export function staticAgents(agents: readonly { agentId: string; ratePerSec: number }[]): AgentSource {
  const now = Date.now();
  const records = new Map(agents.map((a) => [a.agentId, { ...a, partitions: 1, createdAt: now, updatedAt: now } as AgentRecord]));
  const ids = [...records.keys()];
  return { activeIds: () => ids, knownIds: () => ids, get: (id) => records.get(id) };
}
