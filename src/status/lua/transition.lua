--[[
  Moves one message's status record to a new state (StatusStore.transition),
  in one step: whether the edge is allowed is checked against the record as it
  is now, so racing workers and webhooks resolve one way.

  One step, several concerns, each a local function below:
    edge check       the state now, and whether this move may leave it
    lazy creation    with options.create, a missing record counts as QUEUED
                     since createdAt (a freshly queued message's status is its
                     job) and is written now
    timeline         every move appends an entry; an event that changes nothing
                     is kept too, unless the message is waiting (its event is
                     parked, see park.lua)
    failures index   a move into FAILED or FALLBACK_FAILED enters the message
                     (score: when); a move out removes it
    callback feed    a move of a message with a callback URL (field cb) is
                     appended as the change its callback reports
    history feed     every timeline entry (a move, or an event that moved
                     nothing) is appended with the message's facts, for the
                     archiver (src/history/archiver.ts) to write to PostgreSQL;
                     the record keeps the entry's ID (field hf), so the evictor
                     knows when all of it is archived
    settled index    a move into a settled state enters the message (score:
                     when), a move out removes it: the evictor's list of
                     records that leave Redis after the hot window
    metrics          each move counts by state and agent (plus options.count);
                     the first news of delivery and a sent SMS add to their
                     time histograms
    parked events    a move out of a waiting state applies the events parked
                     meanwhile: DELIVERED and READ move the record here and now;
                     any other goes back to the intake stream, where the inbound
                     worker applies it as if it had just arrived

  Input:
    KEYS[1] status key (hash)
    KEYS[2] failures index (zset of refs)
    KEYS[3] metrics hash
    KEYS[4] callback feed (stream)
    KEYS[5] webhook intake (stream)
    KEYS[6] history feed (stream)
    KEYS[7] settled index (zset of refs)

    ARGV[1] the new state
    ARGV[2] now, ms epoch (raised past the record's last timeline entry, field la)
    ARGV[3] ttl of the record, ms (renewed by every move)
    ARGV[4] options, JSON: id (the messageId), ref (its failures-index member),
            countAttempt, error {code, message}, detail, event, fields {k: v},
            count (a metrics field to bump), create {agentId, to, createdAt,
            trafficType, batchId, expireAt, cb, cbs}
    ARGV[5] the waiting states, space-separated
    ARGV[6] the states leading to DELIVERED, space-separated
    ARGV[7] the states leading to READ, space-separated
    ARGV[8] the detail of a timeline entry that moved nothing, before the state (NO_CHANGE)
    ARGV[9] the callback feed's approximate MAXLEN
    ARGV[10] the time histograms' bucket bounds in seconds, ascending, space-separated
             (each bound is also its bucket's field name: h|<name>|<bound>)
    ARGV[11] the history feed's approximate MAXLEN (a cap for an archiver long gone)
    ARGV[12] the settled states, space-separated
    ARGV[13...] the states this move is allowed from

  Output:
    {1, from, state now}  moved; the state now is past ARGV[1] when parked
                          DELIVERED or READ events were applied in the same step
    {0, from}             refused: the edge is not allowed from the state it is in
    {0, false}            no record (and none to create, or creating it is refused)
]]
local statusKey, failuresKey, metricsKey, feedKey, intakeKey, historyKey, settledKey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local target = ARGV[1]
-- An entry is stamped after the record's last one (field la), never before or at it:
-- the processes that move a message (dispatch, inbound) read clocks that differ by
-- milliseconds, and the timeline, the archive (which orders by time and keeps one
-- entry per state and time) and the histograms must agree with the order the
-- entries happened in, here. (A record from before la was kept: not before updatedAt.)
local nowText = ARGV[2]
local last = redis.call('HMGET', statusKey, 'la', 'updatedAt')
if last[1] and tonumber(last[1]) >= tonumber(nowText) then
  nowText = string.format('%.0f', tonumber(last[1]) + 1)
elseif not last[1] and last[2] and tonumber(last[2]) > tonumber(nowText) then
  nowText = last[2]
end
local now = tonumber(nowText)
local o = cjson.decode(ARGV[4])
local waiting, deliveredFrom, readFrom = ARGV[5], ARGV[6], ARGV[7]
local noChange, feedMaxLen, histogramBounds, historyMaxLen, settled = ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local FIRST_ALLOWED = 13

local function listed(list, state) return string.find(' ' .. list .. ' ', ' ' .. state .. ' ', 1, true) ~= nil end

-- The record's fields a move needs (agentId, cb, cbs, batchId, createdAt, and
-- the facts the history feed carries), read once, after the record's own
-- writes and before the first move.
local record

-- Edge check: the state now, and whether the record is to be created (nil: no record, none to create).
local function currentState()
  local cur = redis.call('HGET', statusKey, 'state')
  if cur then return cur, false end
  if type(o.create) ~= 'table' then return nil end
  return 'QUEUED', true
end

-- Edge check: whether this move may leave `state`.
local function allowedFrom(state)
  for i = FIRST_ALLOWED, #ARGV do
    if ARGV[i] == state then return true end
  end
  return false
end

-- Timeline: a JSON array kept as text, an entry appended by string, never by
-- decoding and re-encoding the whole array on every move.
local function appendTimeline(entry)
  local timeline = redis.call('HGET', statusKey, 'timeline')
  if not timeline then timeline = '[{"state":"QUEUED","at":' .. (redis.call('HGET', statusKey, 'createdAt') or nowText) .. '}]' end
  redis.call('HSET', statusKey, 'timeline', string.sub(timeline, 1, -2) .. ',' .. cjson.encode(entry) .. ']', 'la', nowText)
end

-- Lazy creation: the record a freshly queued message would have had, written when it first moves.
local function createRecord(c)
  local fields = {'agentId', c.agentId, 'to', c.to, 'createdAt', c.createdAt}
  for _, k in ipairs({'trafficType', 'batchId', 'expireAt', 'cb', 'cbs'}) do
    if type(c[k]) ~= 'userdata' and c[k] ~= nil and c[k] ~= '' then fields[#fields + 1] = k; fields[#fields + 1] = c[k] end
  end
  redis.call('HSET', statusKey, unpack(fields))
end

-- Fields the caller stores with the move: an attempt, the last error, more fields.
local function applyOptions()
  if o.countAttempt then redis.call('HINCRBY', statusKey, 'attempts', 1) end
  if type(o.error) == 'table' then redis.call('HSET', statusKey, 'lastErrorCode', o.error.code, 'lastError', o.error.message) end
  if type(o.fields) == 'table' then
    for k, v in pairs(o.fields) do redis.call('HSET', statusKey, k, v) end
  end
end

-- Fields the move itself needs of the record, in one read.
local function readRecord()
  local r = redis.call('HMGET', statusKey, 'agentId', 'cb', 'cbs', 'batchId', 'createdAt', 'to', 'trafficType', 'e164', 'expireAt')
  return {
    agent = r[1] or '', cb = r[2], cbs = r[3], batchId = r[4], createdAt = r[5],
    to = r[6], trafficType = r[7], phone = r[8], expireAt = r[9],
  }
end

-- History feed: one timeline entry with the message's facts (the full number only
-- while the record holds it, for the archive's keyed hash), in the same step.
local function feedHistory(from, entry)
  local h = {a = record.agent, m = o.id, s = entry.state, p = from, t = entry.at, c = tonumber(record.createdAt or nowText)}
  if entry.event then h.e = entry.event end
  if entry.detail then h.d = entry.detail end
  if entry.error then h.ec = entry.error.code; h.em = entry.error.message end
  if record.to then h.to = record.to end
  if record.phone then h.ph = record.phone end
  if record.trafficType then h.tt = record.trafficType end
  if record.batchId then h.b = record.batchId end
  if record.expireAt then h.x = tonumber(record.expireAt) end
  if record.cb then h.u = record.cb end
  local id = redis.call('XADD', historyKey, 'MAXLEN', '~', historyMaxLen, '*', 'h', cjson.encode(h))
  redis.call('HSET', statusKey, 'hf', id)
end

-- Failures index: the messages that failed for good, by when (StatusStore.failures reads it).
local function indexFailure(from, to)
  if to == 'FAILED' or to == 'FALLBACK_FAILED' then
    redis.call('ZADD', failuresKey, nowText, o.ref)
  elseif from == 'FAILED' or from == 'FALLBACK_FAILED' then
    redis.call('ZREM', failuresKey, o.ref)
  end
end

-- Callback feed: the change a callback reports, in the same step as the move, so none is lost between the two.
local function feedCallback(from, entry)
  if not record.cb then return end
  -- The same fields replay.ts rebuilds from the timeline entry.
  entry.messageId = o.id
  entry.agentId = record.agent
  entry.previousState = from
  if record.batchId then entry.batchId = record.batchId end
  redis.call('XADD', feedKey, 'MAXLEN', '~', feedMaxLen, '*', 'c', cjson.encode({url = record.cb, scope = record.cbs, data = entry}))
end

-- Metrics: one observation of the time since the message was enqueued. Its bucket
-- counts on its own (metrics.ts makes the buckets cumulative); the sum is in ms.
local function observe(name)
  local ms = now - tonumber(record.createdAt or nowText)
  local le = '+Inf'
  for bound in string.gmatch(histogramBounds, '%S+') do
    if ms <= tonumber(bound) * 1000 then le = bound break end
  end
  redis.call('HINCRBY', metricsKey, 'h|' .. name .. '|' .. le, 1)
  redis.call('HINCRBY', metricsKey, 'h|' .. name .. '|sum_ms', ms)
end

-- Metrics: a move by state and agent, and the time histograms.
local function countMove(from, to)
  redis.call('HINCRBY', metricsKey, 'state|' .. to .. '|' .. record.agent, 1)
  if (to == 'DELIVERED' or to == 'READ') and from ~= 'DELIVERED' and from ~= 'READ' then observe('delivered') end
  if to == 'FALLBACK_SENT' then observe('fallback') end
end

-- One move: the state, its timeline entry, the failures index, the callback feed, the metrics.
local function move(from, to, entry)
  redis.call('HSET', statusKey, 'state', to, 'updatedAt', nowText)
  appendTimeline(entry)
  feedHistory(from, entry)
  indexFailure(from, to)
  feedCallback(from, entry)
  countMove(from, to)
end

-- Parked events: applies the events parked while the message waited; returns the state it is in after them.
local function applyParked(state)
  local parked = redis.call('HGET', statusKey, 'pend')
  if not parked then return state end
  redis.call('HDEL', statusKey, 'pend')
  local events = cjson.decode(parked)
  -- DELIVERED before READ, whatever order they came in; each applied once, here.
  for _, t in ipairs({'DELIVERED', 'READ'}) do
    for _, p in ipairs(events) do
      if p.t == t and not p.done and listed(t == 'DELIVERED' and deliveredFrom or readFrom, state) then
        move(state, t, {state = t, at = now, event = t})
        state = t
        p.done = true
      end
    end
  end
  for _, p in ipairs(events) do
    if not p.done then redis.call('XADD', intakeKey, '*', 'e', p.e) end
  end
  redis.call('HINCRBY', metricsKey, 'inbound|parkedApplied', #events)
  return state
end

local cur, created = currentState()
if not cur then return {0, false} end
if not allowedFrom(cur) then
  if created then return {0, false} end
  if type(o.event) == 'string' and not listed(waiting, cur) then
    local entry = {state = cur, at = now, event = o.event, detail = noChange .. cur}
    appendTimeline(entry)
    record = readRecord()
    feedHistory(cur, entry)
  end
  return {0, cur}
end
if created then createRecord(o.create) end
applyOptions()
record = readRecord()
local entry = {state = target, at = now}
if type(o.event) == 'string' then entry.event = o.event end
if type(o.detail) == 'string' then entry.detail = o.detail end
if type(o.error) == 'table' then entry.error = {code = o.error.code, message = o.error.message} end
move(cur, target, entry)
if type(o.count) == 'string' then redis.call('HINCRBY', metricsKey, o.count, 1) end
local state = target
if listed(waiting, cur) and not listed(waiting, state) then state = applyParked(state) end
-- Only a record that was settled can be in the index: the moves in between (QUEUED → SENDING → SENT) write nothing here.
if listed(settled, state) then
  redis.call('ZADD', settledKey, nowText, o.ref)
elseif listed(settled, cur) then
  redis.call('ZREM', settledKey, o.ref)
end
redis.call('PEXPIRE', statusKey, ARGV[3])
return {1, cur, state}
