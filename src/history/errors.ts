/**
 * The history store's own failures: its database does not answer
 * (HISTORY_UNAVAILABLE: try again), or its schema is not one this code can
 * run on (HISTORY_SCHEMA: a migration failed, an applied one was edited, or
 * the database was migrated by newer code). Bad inputs are PayloadErrors.
 */
import { DispatchError } from '../errors.ts';

export type HistoryErrorCode = 'HISTORY_UNAVAILABLE' | 'HISTORY_SCHEMA';

export class HistoryError extends DispatchError {
  declare readonly code: HistoryErrorCode;
  constructor(code: HistoryErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'HistoryError';
  }
}
