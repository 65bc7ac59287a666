/**
 * Settings the archive keeps itself. The phone-number key: HISTORY_PHONE_KEY
 * when set; otherwise one made by the first process to ask and stored here, so
 * every process on this archive hashes a number the same way, across restarts.
 */
import { randomBytes } from 'node:crypto';
import type { HistoryTx } from './db.ts';

const PHONE_KEY = 'phone_key';

export async function storedPhoneKey(db: HistoryTx): Promise<string> {
  // ON CONFLICT: two processes asking together keep the first one's key.
  await db.query('INSERT INTO history_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [
    PHONE_KEY,
    randomBytes(32).toString('base64'),
  ]);
  const [row] = await db.query<{ value: string }>('SELECT value FROM history_settings WHERE name = $1', [PHONE_KEY]);
  return row!.value;
}

/**
 * The key numbers are hashed with: HISTORY_PHONE_KEY when set, else the one
 * the archive keeps. The archiver and the API both take it from here, so a
 * number looked up or erased hashes as the archiver wrote it.
 */
export function phoneKeyOf(configured: string | undefined, db: HistoryTx): Promise<string> {
  return configured !== undefined ? Promise.resolve(configured) : storedPhoneKey(db);
}
