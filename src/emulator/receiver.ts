/**
 * A bare webhook endpoint on node:http that records what the platform POSTs
 * and answers what its owner says (200, 500 then 200, the handshake secret…):
 * the target for emulator tests, demos and benchmarks that run without the
 * service. It decodes the envelope's data and checks nothing else.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PushEnvelope } from './envelope.ts';
import { WAIT_DEFAULT_MS } from './records.ts';

export interface ReceivedRequest {
  /** 0, 1, 2… in arrival order. */
  seq: number;
  at: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The parsed body, when it is JSON. */
  json: unknown;
  /** Set for Pub/Sub envelopes: the envelope and its decoded data. */
  envelope?: PushEnvelope;
  payload?: Record<string, unknown>;
}

export interface Answer {
  status: number;
  body?: string;
}

export interface WebhookReceiver {
  url: string;
  readonly received: ReceivedRequest[];
  readonly events: EventEmitter<{ request: [ReceivedRequest] }>;
  /** Decides each answer; default 200 with an empty body. Replace it at will. */
  respond: (r: ReceivedRequest) => Answer | number | Promise<Answer | number>;
  /** Resolves once `count` received requests match `pred` (those already received count). */
  waitFor(count: number, pred?: (r: ReceivedRequest) => boolean, timeoutMs?: number): Promise<ReceivedRequest[]>;
  clear(): void;
  close(): Promise<void>;
}

function decode(json: unknown): Pick<ReceivedRequest, 'envelope' | 'payload'> {
  const env = json as PushEnvelope | null;
  if (typeof env?.message?.data !== 'string') return {};
  try {
    return { envelope: env, payload: JSON.parse(Buffer.from(env.message.data, 'base64').toString('utf8')) as Record<string, unknown> };
  } catch {
    return { envelope: env };
  }
}

export async function startWebhookReceiver(host = '127.0.0.1'): Promise<WebhookReceiver> {
  const events = new EventEmitter<{ request: [ReceivedRequest] }>();
  events.setMaxListeners(0);
  let seq = 0;
  const receiver: WebhookReceiver = {
    url: '',
    received: [],
    events,
    respond: () => 200,
    waitFor(count, pred = () => true, timeoutMs = WAIT_DEFAULT_MS) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const hits = receiver.received.filter(pred);
          if (hits.length < count) return false;
          clearTimeout(timer);
          events.off('request', check);
          resolve(hits);
          return true;
        };
        const timer = setTimeout(() => {
          events.off('request', check);
          reject(new Error(`receiver: ${receiver.received.filter(pred).length} of ${count} matching requests within ${timeoutMs} ms`));
        }, timeoutMs);
        if (!check()) events.on('request', check);
      });
    },
    clear() {
      receiver.received.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const r: ReceivedRequest = { seq: seq++, at: Date.now(), headers: req.headers, body, json, ...decode(json) };
      // Answer first, then tell listeners: a test that reconfigures on an event must not change this answer.
      void Promise.resolve(r)
        .then(receiver.respond)
        .then(
          (a) => {
            const answer = typeof a === 'number' ? { status: a } : a;
            res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(answer.body ?? '');
            receiver.received.push(r);
            events.emit('request', r);
          },
          () => res.writeHead(500).end(),
        );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  receiver.url = `http://${host}:${(server.address() as AddressInfo).port}/webhooks/rbm`;
  return receiver;
}
