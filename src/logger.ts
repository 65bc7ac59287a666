/**
 * Structured JSON logs (pino, Fastify's own logger). Secrets are redacted by
 * path as a second line of defence; phone numbers are masked where logged.
 */
import { pino, type Logger as PinoLogger } from 'pino';
import type { Config } from './config.ts';

export type Logger = PinoLogger;

export function createLogger(level: Config['logLevel'], name = 'rbm-dispatch'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: ['authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization', 'token', '*.token', 'private_key', '*.private_key', 'key', 'apiKey'],
      censor: '[redacted]',
    },
  });
}
