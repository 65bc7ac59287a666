-- History: one row per message (messages) and its timeline (message_events).
--
-- Laid out for 100 M messages and more:
--   * Both tables are partitioned by RANGE of the message's created_at, one
--     partition per UTC day (messages_pYYYYMMDD, message_events_pYYYYMMDD),
--     created on demand by the store before a write that needs one. A day's
--     report reads one day's partitions; retention drops whole days (DROP
--     TABLE: no DELETE, no vacuum debt, no bloat). Events are partitioned by
--     their MESSAGE's created_at, not their own time, so a message and its
--     timeline always live, and leave, together.
--   * Every unique key of a partitioned table must hold the partition key,
--     so the keys carry created_at; every change carries its message's
--     createdAt, so a write always names its partition.
--   * message_id is uuid (every messageId is one: jobs/send-message.ts):
--     16 bytes instead of 37 in the heap and in every index that holds it.
--   * to_hash is the HMAC-SHA256 of the E.164 number (phone-hash.ts): lookups
--     by number without storing it; to_masked is what answers show.
--   * messages_report covers the deliveries report (state and the outcome
--     times INCLUDEd), so one agent over 30 days is an index-only scan of that
--     agent's entries, not a visit to every heap page the agents share.
--   * A lookup by (agent_id, message_id) alone probes each day's primary key
--     (~90 small index probes at 90 days' retention): milliseconds, and the
--     price of day partitions.

CREATE TABLE messages (
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  sent_at          timestamptz,
  delivered_at     timestamptz,
  read_at          timestamptz,
  fallback_sent_at timestamptz,
  failed_at        timestamptz,
  last_error_at    timestamptz,
  message_id       uuid        NOT NULL,
  agent_id         text        NOT NULL,
  state            text        NOT NULL,
  channel          text        NOT NULL DEFAULT 'rcs' CHECK (channel IN ('rcs', 'sms')),
  to_masked        text,
  to_hash          bytea,
  traffic_type     text,
  batch_id         text,
  fallback_reason  text,
  last_error_code  text,
  last_error_message text,
  text             text,
  PRIMARY KEY (agent_id, message_id, created_at)
) PARTITION BY RANGE (created_at);

CREATE INDEX messages_by_phone ON messages (to_hash, agent_id, created_at DESC) WHERE to_hash IS NOT NULL;
CREATE INDEX messages_report ON messages (agent_id, created_at)
  INCLUDE (state, traffic_type, sent_at, delivered_at, read_at, fallback_sent_at);

CREATE TABLE message_events (
  created_at     timestamptz NOT NULL,
  at             timestamptz NOT NULL,
  message_id     uuid        NOT NULL,
  agent_id       text        NOT NULL,
  state          text        NOT NULL,
  previous_state text,
  event          text,
  detail         text,
  error_code     text,
  error_message  text,
  -- The idempotency key of a change: (agent_id, message_id, state, at), with the partition key;
  -- in this order it also serves a message's timeline, ordered by at.
  PRIMARY KEY (agent_id, message_id, created_at, at, state)
) PARTITION BY RANGE (created_at);

-- Which of two changes at the same millisecond is the later one (parked events are applied in the
-- step that settles their message, at the same time): the further along the machine. store-rank.ts
-- holds the same table; test/history-store.test.ts keeps the two equal.
CREATE FUNCTION history_state_rank(state text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE state
    WHEN 'QUEUED' THEN 0
    WHEN 'SENDING' THEN 1
    WHEN 'SENT' THEN 2
    WHEN 'NOT_RCS' THEN 2
    WHEN 'FAILED' THEN 3
    WHEN 'EXPIRED' THEN 3
    WHEN 'REVOKED' THEN 3
    WHEN 'FALLBACK_QUEUED' THEN 4
    WHEN 'FALLBACK_SENDING' THEN 5
    WHEN 'FALLBACK_SENT' THEN 6
    WHEN 'FALLBACK_FAILED' THEN 6
    WHEN 'DELIVERED' THEN 7
    WHEN 'READ' THEN 8
    ELSE -1
  END
$$;
