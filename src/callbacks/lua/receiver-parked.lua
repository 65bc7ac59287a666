--[[
  Lists a parked delivery once the runner has delayed it (Receivers.parked),
  so a call that ends can wake it. A slot may have come free meanwhile, with
  nobody parked to hand it to: then the slot is this delivery's at once.

  Input:
    KEYS[1] the receiver's hash (breaker field open)
    KEYS[2] its leases (zset, by lease expiry)
    KEYS[3] its parked deliveries (zset, by when parked)

    ARGV[1] now, ms epoch
    ARGV[2] the delivery's job ID
    ARGV[3] the most calls in flight to one receiver
    ARGV[4] ttl of the parked set, ms
    ARGV[5] lease, ms

  Output:
    1  a slot was free: it is leased to this delivery, wake it now
    0  listed as parked (or the breaker is open)
]]
local now = tonumber(ARGV[1])
redis.call('ZADD', KEYS[3], 'NX', now, ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
if tonumber(redis.call('HGET', KEYS[1], 'open') or '0') > 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[2])
  return 1
end
return 0
