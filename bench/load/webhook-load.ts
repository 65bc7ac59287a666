/**
 * The load generator of the webhook benchmark, run as its own process so it
 * does not share the server's event loop: autocannon POSTing RBM webhook
 * envelopes, each a fresh DELIVERED event (unique eventId) signed with the
 * client token. Arguments: JSON {url, token, connections, durationSec, rate?}.
 * Prints autocannon's result as JSON on stdout.
 */
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import { signWebhookData } from '../../src/webhook/signature.ts';

const args = JSON.parse(process.argv[2]!) as { url: string; token: string; connections: number; durationSec: number; rate?: number };
const run = randomBytes(4).toString('hex');
let n = 0;

function signedEnvelope(): { body: string; signature: string } {
  n++;
  const data = Buffer.from(
    JSON.stringify({
      senderPhoneNumber: '+12223334444',
      eventType: 'DELIVERED',
      eventId: `bench-${run}-${n}`,
      messageId: '8a0d3b9e-5c1f-4f6e-9b7a-2d4c6e8f0a1b',
      sendTime: new Date().toISOString(),
      agentId: 'bench-agent@rbm.goog',
    }),
  );
  const body = JSON.stringify({
    message: {
      attributes: { business_id: 'bench-agent@rbm.goog', product: 'RBM', type: 'event' },
      data: data.toString('base64'),
      messageId: String(n),
      publishTime: new Date().toISOString(),
    },
    subscription: 'projects/bench/subscriptions/rbm',
  });
  return { body, signature: signWebhookData(args.token, data) };
}

const result = await autocannon({
  url: args.url,
  connections: args.connections,
  duration: args.durationSec,
  ...(args.rate ? { overallRate: args.rate } : {}),
  requests: [
    {
      method: 'POST',
      setupRequest: (req: autocannon.Request) => {
        const { body, signature } = signedEnvelope();
        return { ...req, body, headers: { 'content-type': 'application/json', 'x-goog-signature': signature } };
      },
    },
  ],
});
process.stdout.write(
  JSON.stringify({
    requestsPerSec: result.requests.average,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
  }),
);
