/**
 * GET, PUT and DELETE of one fault setting of the control API (/_emulator/faults,
 * /token/faults, /sms/faults): each answers the setting as it is after the call;
 * a body its check refuses answers 400 INVALID_ARGUMENT with the check's words.
 */
import type { FastifyInstance } from 'fastify';
import { googleError } from './google-error.ts';

export interface Setting<T> {
  read(): unknown;
  set(value: T): void;
  clear(): void;
}

export function registerSettingRoutes<T>(scope: FastifyInstance, path: string, setting: Setting<T>, check: (body: unknown) => T): void {
  scope.get(path, async () => setting.read());

  scope.put(path, async (request, reply) => {
    try {
      setting.set(check(request.body));
      return setting.read();
    } catch (err) {
      return reply.code(400).send(googleError('INVALID_ARGUMENT', (err as Error).message));
    }
  });

  scope.delete(path, async () => {
    setting.clear();
    return setting.read();
  });
}
