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
