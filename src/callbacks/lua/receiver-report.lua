--[[
  How a delivery's turn ended (Receivers.report, Receivers.forget): frees its
  slot, moves the breaker, and hands free slots to the oldest parked
  deliveries (see "breaker" and "Parked" in receivers.ts).

  Breaker: a success closes it and clears the failing set; a failure joins the
  failing set (distinct deliveries since the last success), and `threshold` of
  them open it for the base cooldown; a failed probe opens it again for twice
  the last cooldown, up to the max.

  Input:
    KEYS[1] the receiver's hash (breaker fields open, probe, cool, last; tag)
    KEYS[2] its leases (zset, by lease expiry)
    KEYS[3] its parked deliveries (zset, by when parked)
    KEYS[4] its queued deliveries (set: its depth)
    KEYS[5] receivers whose breaker is open (zset, by open-until; the metric)
    KEYS[6] metrics hash (counts callback_breaker|opened, callback_breaker|closed)
    KEYS[7] its failing deliveries since the last success (set)

    ARGV[1] now, ms epoch
    ARGV[2] the delivery's job ID
    ARGV[3] '1' when a call was made ('0': it gave up while parked)
    ARGV[4] '1' when the call succeeded (a 2xx)
    ARGV[5] '1' when the call was the breaker's probe
    ARGV[6] '1' when the delivery leaves the queue (delivered, or failed for good)
    ARGV[7] threshold: failing deliveries that open the breaker
    ARGV[8] the first cooldown, ms
    ARGV[9] the longest cooldown, ms
    ARGV[10] the most calls in flight to one receiver
    ARGV[11] ttl of the receiver's hash and failing set, ms
    ARGV[12] the last failure (kept in the hash's field last)
    ARGV[13] the receiver's digest (its member in KEYS[5])
    ARGV[14] lease, ms
    ARGV[15] an open receiver nobody probed for this long (ms) leaves KEYS[5]

  Output:
    {event, cooldown, job IDs to wake...}
    event: '' | 'opened' | 'reopened' | 'closed'; each woken delivery already holds a lease
]]
local now = tonumber(ARGV[1])
local called, ok, probe, done = ARGV[3] == '1', ARGV[4] == '1', ARGV[5] == '1', ARGV[6] == '1'
local cap = tonumber(ARGV[10])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if done then
  redis.call('SREM', KEYS[4], ARGV[2])
  -- Nothing of this receiver left to keep in order: its next delivery starts the round again.
  if redis.call('SCARD', KEYS[4]) == 0 then redis.call('HDEL', KEYS[1], 'tag') end
end
local event, wake = '', 0
local open = tonumber(redis.call('HGET', KEYS[1], 'open') or '0')
local cool = tonumber(redis.call('HGET', KEYS[1], 'cool') or '0')
if called and ok then
  redis.call('DEL', KEYS[7])
  if open > 0 then
    redis.call('HDEL', KEYS[1], 'open', 'probe', 'cool')
    redis.call('ZREM', KEYS[5], ARGV[13])
    redis.call('HINCRBY', KEYS[6], 'callback_breaker|closed', 1)
    event, wake = 'closed', cap
  else
    wake = 1
  end
elseif called then
  redis.call('SADD', KEYS[7], ARGV[2])
  redis.call('PEXPIRE', KEYS[7], ARGV[11])
  local f = redis.call('SCARD', KEYS[7])
  redis.call('HSET', KEYS[1], 'last', ARGV[12])
  if open > 0 then
    if probe then
      cool = math.min(math.max(cool * 2, tonumber(ARGV[8])), tonumber(ARGV[9]))
      redis.call('HSET', KEYS[1], 'open', now + cool, 'cool', cool, 'probe', 0)
      redis.call('ZADD', KEYS[5], now + cool, ARGV[13])
      event = 'reopened'
    end
  elseif f >= tonumber(ARGV[7]) then
    cool = tonumber(ARGV[8])
    redis.call('HSET', KEYS[1], 'open', now + cool, 'cool', cool, 'probe', 0)
    redis.call('ZADD', KEYS[5], now + cool, ARGV[13])
    redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - tonumber(ARGV[15]))
    redis.call('HINCRBY', KEYS[6], 'callback_breaker|opened', 1)
    event = 'opened'
  else
    wake = 1
  end
end
local out = {event, cool}
if wake > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  wake = math.min(wake, cap - redis.call('ZCARD', KEYS[2]))
  if wake > 0 then
    -- Each woken delivery gets its slot now, so that one fetched meanwhile cannot take it
    -- and send it back to the parked set: a delivery parks once per turn, not again and again.
    local popped = redis.call('ZPOPMIN', KEYS[3], wake)
    for i = 1, #popped, 2 do
      redis.call('ZADD', KEYS[2], now + tonumber(ARGV[14]), popped[i])
      out[#out + 1] = popped[i]
    end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[11])
return out
