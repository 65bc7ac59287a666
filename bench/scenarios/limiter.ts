/**
 * The limiter held at an agent's quota: rbm-dispatch at 500/s for 20 s
 * against an emulator whose token-bucket quota is the same 500/s. Measured
 * as the emulator's accepted count over the 20 s after a 1 s warm-up.
 */
import { benchService, deleteKeys, typicalMessage, type EmulatorProcess } from '../lib.ts';

export interface LimiterResult {
  ratePerSec: number;
  seconds: number;
  measuredPerSec: number;
  deviation: number;
  rateLimited: number;
}

export async function limiter(
  emu: EmulatorProcess,
  redisUrl: string,
  opts: { ratePerSec: number; seconds: number },
): Promise<LimiterResult> {
  const agent = 'limit-agent';
  await emu.control('/reset', 'POST');
  await emu.control(`/quotas/${agent}`, 'PUT', { ratePerSec: opts.ratePerSec });
  const { service, close } = await benchService(emu, redisUrl, { QUEUE_PREFIX: 'bench-limit', RBM_AGENTS: `${agent}:${opts.ratePerSec}` });
  // Enough backlog that the queue never runs dry during the measurement.
  const backlog = opts.ratePerSec * (opts.seconds + 3);
  await service.producer.sendMessages(Array.from({ length: backlog }, (_, i) => ({ ...typicalMessage(i), agentId: agent })));
  const accepted = async () => ((await emu.control('/counters')).perAgent[agent]?.accepted ?? 0) as number;
  service.startDispatch();
  await new Promise((r) => setTimeout(r, 1000)); // warm-up: connections, token, first windows
  const a0 = await accepted();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, opts.seconds * 1000));
  const a1 = await accepted();
  const t1 = performance.now();
  const counters = await emu.control('/counters');
  await deleteKeys(service.redis.producer, 'bench-limit:*');
  await close();
  await emu.control('/reset', 'POST');
  const measuredPerSec = ((a1 - a0) / (t1 - t0)) * 1000;
  return { ...opts, measuredPerSec, deviation: measuredPerSec / opts.ratePerSec - 1, rateLimited: counters.rateLimited };
}
