/**
 * AUTHENTICATION through a PROMOTION backlog: 20,000 promotions queued for an
 * agent at 1,000/s, then an OTP every 25 ms; each OTP's time from the
 * producer call to its arrival at the emulator.
 */
import { benchService, deleteKeys, percentile, typicalMessage, type EmulatorProcess } from '../lib.ts';

export interface PriorityResult {
  backlog: number;
  ratePerSec: number;
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  rateLimited: number;
}

export async function priority(
  emu: EmulatorProcess,
  redisUrl: string,
  opts: { backlog: number; ratePerSec: number; samples: number },
): Promise<PriorityResult> {
  const agent = 'prio-agent';
  await emu.control('/reset', 'POST');
  await emu.control(`/quotas/${agent}`, 'PUT', { ratePerSec: opts.ratePerSec });
  const { service, close } = await benchService(emu, redisUrl, { QUEUE_PREFIX: 'bench-prio', RBM_AGENTS: `${agent}:${opts.ratePerSec}` });
  await service.producer.sendMessages(
    Array.from({ length: opts.backlog }, (_, i) => ({ ...typicalMessage(i, 'PROMOTION'), agentId: agent })),
  );
  const dispatch = service.startDispatch();
  const pending = new Map<string, () => void>();
  const completed = new Set<string>();
  dispatch.workers[0]!.worker.on('completed', (job) => {
    if (job.data.message?.messageTrafficType !== 'AUTHENTICATION') return;
    completed.add(job.data.messageId);
    pending.get(job.data.messageId)?.();
  });
  await new Promise((r) => setTimeout(r, 1000)); // the backlog is draining at full rate
  const sent: Array<{ id: string; at: number; done: Promise<void> }> = [];
  for (let k = 0; k < opts.samples; k++) {
    const at = Date.now();
    const { messageId } = await service.producer.sendMessage({ ...typicalMessage(900_000 + k, 'AUTHENTICATION'), agentId: agent });
    // An OTP can finish before sendMessage returns to us: check before waiting.
    const done = completed.has(messageId) ? Promise.resolve() : new Promise<void>((resolve) => pending.set(messageId, resolve));
    sent.push({ id: messageId, at, done });
    await new Promise((r) => setTimeout(r, 25));
  }
  await Promise.all(sent.map((s) => s.done));
  const latencies = await Promise.all(sent.map(async (s) => ((await emu.control(`/messages/${s.id}`)).receivedAt as number) - s.at));
  const counters = await emu.control('/counters');
  await deleteKeys(service.redis.producer, 'bench-prio:*');
  await close();
  await emu.control('/reset', 'POST');
  return {
    ...opts,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: Math.max(...latencies),
    rateLimited: counters.rateLimited,
  };
}
