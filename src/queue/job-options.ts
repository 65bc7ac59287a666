/**
 * Each job's BullMQ options: the contract's defaults (jobs/), with the
 * config's overrides, in this one place. What a contract declares is what a
 * job gets unless a variable named here says otherwise.
 */
import { jobs, SEND_EVENT, SEND_MESSAGE, SEND_SMS, DELIVER_CALLBACK, type JobDefaults, type JobName } from '../../jobs/index.ts';
import { retryDelays } from '../callbacks/schedule.ts';
import type { Config } from '../config.ts';

export type JobOptionsTable = { readonly [N in JobName]: JobDefaults };

/** What the contracts declare, untouched by any config (a producer or test without a Config). */
export const contractJobOptions = Object.fromEntries(Object.values(jobs).map((c) => [c.name, c.defaultOptions])) as JobOptionsTable;

export function jobOptionsFrom(config: Pick<Config, 'dispatch' | 'sms' | 'callbacks'>): JobOptionsTable {
  const contracts = contractJobOptions;
  const d = config.dispatch;
  // DISPATCH_*: messages and events share their agent's queue and its retry policy.
  const outbound: JobDefaults = { attempts: d.attempts, backoff: { type: 'exponential', delay: d.backoffMs, jitter: d.backoffJitter } };
  const sms = contracts[SEND_SMS];
  const cb = config.callbacks;
  const callbackSchedule = { baseMs: cb.retryBaseMs, maxDelayMs: cb.retryMaxDelayMs, forMs: cb.retryForMs };
  return {
    ...contracts,
    [SEND_MESSAGE]: outbound,
    [SEND_EVENT]: outbound,
    // SMS_ATTEMPTS, SMS_BACKOFF_MS; the jitter is the contract's.
    [SEND_SMS]: { attempts: config.sms.attempts, backoff: { ...sms.backoff, delay: config.sms.backoffMs } },
    // CALLBACK_RETRY_*: the first try and one per delay of the schedule, which the callback worker serves.
    [DELIVER_CALLBACK]: { ...contracts[DELIVER_CALLBACK], attempts: retryDelays(callbackSchedule).length + 1 },
  };
}
