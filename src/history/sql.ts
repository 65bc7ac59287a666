/**
 * The history store's SQL, written once for both clients. Batches travel as
 * one JSON parameter read by jsonb_to_recordset (no parameter-count limit,
 * no client-specific array encoding), times as ms numbers turned into
 * timestamptz here and back into ms (float8) on the way out, hashes as hex.
 */

/** ms since the epoch (a bigint expression) → timestamptz, exactly (no float rounding). */
export const ts = (ms: string) => `(timestamptz 'epoch' + (${ms}) * interval '1 millisecond')`;
/** timestamptz → ms since the epoch as float8 (exact for whole ms); null stays null. */
export const ms = (t: string) => `(extract(epoch from ${t}) * 1000)::float8`;

/** A JSON array of strings ($n) as text[]. */
export const textArray = (param: string) => `ARRAY(SELECT jsonb_array_elements_text(${param}::text::jsonb))`;

const EVENT_COLUMNS =
  'agent_id text, message_id uuid, created_at bigint, at bigint, state text, previous_state text, ' +
  'event text, detail text, error_code text, error_message text';

/** $1: the changes as JSON. Returns one row per message that gained at least one entry. */
export const INSERT_EVENTS = `
WITH input AS (SELECT * FROM jsonb_to_recordset($1::text::jsonb) AS x(${EVENT_COLUMNS})),
ins AS (
  INSERT INTO message_events (agent_id, message_id, created_at, at, state, previous_state, event, detail, error_code, error_message)
  SELECT agent_id, message_id, ${ts('created_at')}, ${ts('at')}, state, previous_state, event, detail, error_code, error_message
  FROM input
  ON CONFLICT DO NOTHING
  RETURNING agent_id, message_id, created_at
)
SELECT agent_id, message_id::text AS message_id, ${ms('created_at')} AS created_at, count(*)::int AS added
FROM ins GROUP BY agent_id, message_id, created_at`;

const MESSAGE_COLUMNS =
  'agent_id text, message_id uuid, created_at bigint, state text, updated_at bigint, sent_at bigint, delivered_at bigint, ' +
  'read_at bigint, fallback_sent_at bigint, failed_at bigint, to_masked text, to_hash text, traffic_type text, batch_id text, ' +
  'fallback_reason text, last_error_code text, last_error_message text, last_error_at bigint, text text, expire_at bigint, ' +
  'callback_url text';

/** Later by (time, rank): the same order as fold.ts's. */
const NEWER = '(excluded.updated_at, history_state_rank(excluded.state)) > (m.updated_at, history_state_rank(m.state))';
const ERROR_NEWER = 'excluded.last_error_at IS NOT NULL AND (m.last_error_at IS NULL OR excluded.last_error_at >= m.last_error_at)';

/** $1: folded rows as JSON (fold.ts). The merge with a stored row is fold.ts's merge. */
export const UPSERT_MESSAGES = `
INSERT INTO messages AS m (agent_id, message_id, created_at, state, updated_at, sent_at, delivered_at, read_at, fallback_sent_at,
  failed_at, channel, to_masked, to_hash, traffic_type, batch_id, fallback_reason, last_error_code, last_error_message, last_error_at, text,
  expire_at, callback_url)
SELECT agent_id, message_id, ${ts('created_at')}, state, ${ts('updated_at')}, ${ts('sent_at')}, ${ts('delivered_at')}, ${ts('read_at')},
  ${ts('fallback_sent_at')}, ${ts('failed_at')}, CASE WHEN fallback_sent_at IS NULL THEN 'rcs' ELSE 'sms' END, to_masked,
  decode(to_hash, 'hex'), traffic_type, batch_id, fallback_reason, last_error_code, last_error_message, ${ts('last_error_at')}, text,
  ${ts('expire_at')}, callback_url
FROM jsonb_to_recordset($1::text::jsonb) AS x(${MESSAGE_COLUMNS})
ON CONFLICT (agent_id, message_id, created_at) DO UPDATE SET
  state = CASE WHEN ${NEWER} THEN excluded.state ELSE m.state END,
  updated_at = greatest(m.updated_at, excluded.updated_at),
  sent_at = least(m.sent_at, excluded.sent_at),
  delivered_at = least(m.delivered_at, excluded.delivered_at),
  read_at = least(m.read_at, excluded.read_at),
  fallback_sent_at = least(m.fallback_sent_at, excluded.fallback_sent_at),
  failed_at = least(m.failed_at, excluded.failed_at),
  channel = CASE WHEN coalesce(m.fallback_sent_at, excluded.fallback_sent_at) IS NULL THEN 'rcs' ELSE 'sms' END,
  to_masked = coalesce(m.to_masked, excluded.to_masked),
  to_hash = coalesce(m.to_hash, excluded.to_hash),
  traffic_type = coalesce(m.traffic_type, excluded.traffic_type),
  batch_id = coalesce(m.batch_id, excluded.batch_id),
  fallback_reason = coalesce(m.fallback_reason, excluded.fallback_reason),
  last_error_code = CASE WHEN ${ERROR_NEWER} THEN excluded.last_error_code ELSE m.last_error_code END,
  last_error_message = CASE WHEN ${ERROR_NEWER} THEN excluded.last_error_message ELSE m.last_error_message END,
  last_error_at = greatest(m.last_error_at, excluded.last_error_at),
  text = coalesce(m.text, excluded.text),
  expire_at = coalesce(m.expire_at, excluded.expire_at),
  callback_url = coalesce(m.callback_url, excluded.callback_url)`;

/** The columns of a message as the store reads it. */
export const MESSAGE_SELECT =
  `agent_id, message_id::text AS message_id, ${ms('created_at')} AS created_at, ${ms('updated_at')} AS updated_at, ` +
  'state, channel, to_masked, traffic_type, batch_id, fallback_reason, last_error_code, last_error_message, ' +
  `${ms('expire_at')} AS expire_at, callback_url`;

/** $1 agent, $2 messageId: the newest row (one, unless a messageId was reused across days). */
export const SELECT_MESSAGE = `SELECT ${MESSAGE_SELECT}, text FROM messages
WHERE agent_id = $1 AND message_id = $2::uuid ORDER BY created_at DESC LIMIT 1`;

/** $1 agent, $2 messageId, $3 createdAt ms, $4 limit. */
export const SELECT_TIMELINE = `SELECT state, ${ms('at')} AS at, event, detail, error_code, error_message FROM message_events
WHERE agent_id = $1 AND message_id = $2::uuid AND created_at = ${ts('$3::bigint')}
ORDER BY at, history_state_rank(state) LIMIT $4`;

/** $1 hash hex, $2 agents JSON, $3 cursor createdAt ms or null, $4 cursor agent, $5 cursor messageId, $6 limit. */
export const SELECT_BY_PHONE = `SELECT ${MESSAGE_SELECT} FROM messages
WHERE to_hash = decode($1, 'hex') AND agent_id = ANY(${textArray('$2')})
  AND ($3::bigint IS NULL OR (created_at, agent_id, message_id) < (${ts('$3::bigint')}, $4::text, $5::uuid))
ORDER BY created_at DESC, agent_id DESC, message_id DESC LIMIT $6`;

/** $1 hash hex: a number's messages and their timelines, in one statement. */
export const ERASE = `
WITH gone AS (DELETE FROM messages WHERE to_hash = decode($1, 'hex') RETURNING agent_id, message_id, created_at),
events AS (
  DELETE FROM message_events e USING gone
  WHERE e.agent_id = gone.agent_id AND e.message_id = gone.message_id AND e.created_at = gone.created_at
  RETURNING 1
)
SELECT (SELECT count(*) FROM gone)::int AS messages, (SELECT count(*) FROM events)::int AS events`;
