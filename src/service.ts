/**
 * The composition of the service's parts from one Config: Redis connections in
 * their two roles, the RBM client, status stores, the producer, and dispatch
 * workers on demand. Entry points, tests and benchmarks all build it here, so
 * the wiring exists once. No listen(), no signals: those belong to workers/.
 */
import type { Redis } from 'ioredis';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import { createRedis, whenReady } from './queue/connection.ts';
import { startDispatch, type Dispatch } from './queue/dispatch.ts';
import { Producer } from './queue/producer.ts';
import type { RbmClient } from './rbm/client.ts';
import { connectRbm } from './rbm/connect.ts';
import { StatusStore } from './status/store.ts';

export interface Service {
  rbm: RbmClient;
  producer: Producer;
  /** The store as producers see it (fail-fast connection). */
  status: StatusStore;
  redis: { producer: Redis; worker: Redis };
  /** Starts one rate-limited worker per agent; several calls start several sets. */
  startDispatch(): Dispatch;
  /** Stops dispatch (finishing jobs in hand), then the producer, the RBM client and Redis. */
  close(): Promise<void>;
}

export async function createService(
  config: Readonly<Config>,
  deps: { redisUrl: string; rbm: { baseUrl: string; keyFile: string }; log: Logger; now?: () => number },
): Promise<Service> {
  const rbm = await connectRbm(config, deps.rbm);
  const producerRedis = createRedis(deps.redisUrl, 'producer');
  const workerRedis = createRedis(deps.redisUrl, 'worker');
  await whenReady(workerRedis);
  const storeOptions = { prefix: config.queuePrefix, ttlMs: config.statusTtlMs };
  const status = new StatusStore(producerRedis, storeOptions);
  // Workers write status through the waiting connection: a Redis blip delays a job, it does not fail it.
  const workerStatus = new StatusStore(workerRedis, storeOptions);
  const producer = await Producer.create({
    connection: producerRedis,
    prefix: config.queuePrefix,
    agents: config.agents,
    status,
    jobDefaults: config.dispatch,
    ...(deps.now ? { now: deps.now } : {}),
  });
  const dispatches: Dispatch[] = [];
  let closing: Promise<void> | undefined;
  return {
    rbm,
    producer,
    status,
    redis: { producer: producerRedis, worker: workerRedis },
    startDispatch() {
      const dispatch = startDispatch({ config, connection: workerRedis, rbm, status: workerStatus, log: deps.log });
      dispatches.push(dispatch);
      return dispatch;
    },
    close() {
      closing ??= (async () => {
        await Promise.all(dispatches.map((d) => d.close()));
        await producer.close();
        await rbm.close();
        await Promise.all([producerRedis.quit(), workerRedis.quit()]);
      })();
      return closing;
    },
  };
}
