/**
 * The API intake benchmark's client, in its own process: POSTs `total`
 * messages to the producer API, either as batches of `batchSize` or one per
 * request, `concurrency` requests in flight. Bodies are built before timing.
 * Argument: JSON {url, total, batchSize (0 = single POSTs), concurrency}.
 * Prints {messagesPerSec, requests, non2xx} as JSON.
 */
import { Pool } from 'undici';
import { typicalMessage } from '../lib.ts';

const args = JSON.parse(process.argv[2]!) as { url: string; total: number; batchSize: number; concurrency: number };
const pool = new Pool(args.url, { connections: args.concurrency });
const bodies: Array<{ path: string; body: string; count: number }> = [];
if (args.batchSize > 0) {
  for (let from = 0; from < args.total; from += args.batchSize) {
    const messages = Array.from({ length: Math.min(args.batchSize, args.total - from) }, (_, i) => typicalMessage(from + i));
    bodies.push({ path: '/v1/messages:batch', body: JSON.stringify({ messages }), count: messages.length });
  }
} else {
  for (let i = 0; i < args.total; i++) bodies.push({ path: '/v1/messages', body: JSON.stringify(typicalMessage(i)), count: 1 });
}

let next = 0;
let non2xx = 0;
const start = performance.now();
await Promise.all(
  Array.from({ length: args.concurrency }, async () => {
    while (next < bodies.length) {
      const { path, body } = bodies[next++]!;
      const res = await pool.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body });
      await res.body.text();
      if (res.statusCode !== 202) non2xx++;
    }
  }),
);
const seconds = (performance.now() - start) / 1000;
await pool.close();
process.stdout.write(JSON.stringify({ messagesPerSec: args.total / seconds, requests: bodies.length, non2xx }));
