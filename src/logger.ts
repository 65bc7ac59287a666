/**
 * Structured JSON logs (pino, Fastify's own logger). Secrets are redacted by
 * path as a second line of defence; phone numbers are masked where logged,
 * request URLs included (GET /v1/…?to=+14155550123 is logged as +1415***0123).
 */
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { Config } from './config.ts';
import { maskPhonesInUrl } from './mask.ts';

export type Logger = PinoLogger;

/** What Fastify logs of each request (its own serializer's fields), with the numbers in the URL masked. */
interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

function request(req: LoggedRequest) {
  return {
    method: req.method,
    url: req.url === undefined ? undefined : maskPhonesInUrl(req.url),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}

/** `destination`: where lines go (stdout when absent; tests read them). */
export function createLogger(level: Config['logLevel'], name = 'rbm-dispatch', destination?: DestinationStream): Logger {
  return pino(
    {
      name,
      level,
      // Fastify puts a logger's own serializers over its defaults, so this one logs every request line.
      serializers: { req: request },
      redact: {
        paths: [
          'authorization',
          '*.authorization',
          'headers.authorization',
          'req.headers.authorization',
          'token',
          '*.token',
          'private_key',
          '*.private_key',
          'key',
          'apiKey',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
