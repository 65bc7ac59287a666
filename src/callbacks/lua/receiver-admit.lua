--[[
  Whether a delivery may call its receiver now (Receivers.admit): a call when
  the breaker is closed and a slot is free (it takes a lease), the probe when
  the breaker's cooldown is over and no probe is out, else parked.

  Input:
    KEYS[1] the receiver's hash (breaker fields open, probe, cool, last)
    KEYS[2] its leases (zset: calls in flight, by lease expiry)
    KEYS[3] its parked deliveries (zset, by when parked)
    KEYS[4] metrics hash (counts callback_parked|open, callback_parked|busy)

    ARGV[1] now, ms epoch
    ARGV[2] the delivery's job ID
    ARGV[3] the most calls in flight to one receiver
    ARGV[4] lease, ms

  Output:
    {'call'}                                       call it (a lease is taken)
    {'probe'}                                      call it as the breaker's probe (a lease is taken)
    {'open', openUntil, cooldown, last failure}    breaker open: parked
    {'probing', probeUntil, cooldown, last failure}  a probe is out: parked
    {'busy', parked count}                         every slot taken: parked
]]
local now = tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'open', 'probe', 'cool', 'last')
local open, probe = tonumber(st[1] or '0'), tonumber(st[2] or '0')
local leaseUntil = now + tonumber(ARGV[4])
local function take(verdict)
  redis.call('ZADD', KEYS[2], leaseUntil, ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  redis.call('ZREM', KEYS[3], ARGV[2])
  return {verdict}
end
if open > 0 then
  -- A slot reserved for it when it was woken is not its any more.
  redis.call('ZREM', KEYS[2], ARGV[2])
  if now < open then
    redis.call('HINCRBY', KEYS[4], 'callback_parked|open', 1)
    return {'open', open, st[3] or '0', st[4] or ''}
  end
  if probe > now then
    redis.call('HINCRBY', KEYS[4], 'callback_parked|open', 1)
    return {'probing', probe, st[3] or '0', st[4] or ''}
  end
  redis.call('HSET', KEYS[1], 'probe', leaseUntil)
  return take('probe')
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) and not redis.call('ZSCORE', KEYS[2], ARGV[2]) then
  redis.call('HINCRBY', KEYS[4], 'callback_parked|busy', 1)
  return {'busy', redis.call('ZCARD', KEYS[3])}
end
return take('call')
