--[[
  Changes an agent's adaptive rate (AdaptiveRate.apply): a compare-and-set on
  the state's version that writes the state and the queue's global rate limit
  (the meta fields BullMQ's moveToActive reads on every fetch) in one step, so
  two processes answering the same 429 burst make one decrease.

  Input:
    KEYS[1] the rate state (hash, see adaptive-rate-read.lua)
    KEYS[2] the queue's meta hash (BullMQ's; fields max and duration)

    ARGV[1] the version read (0 when there was no state)
    ARGV[2] ceiling: the configured rate
    ARGV[3] rate: the effective rate
    ARGV[4] decreasedAt, ms epoch
    ARGV[5] increasedAt, ms epoch
    ARGV[6] the limiter's max (jobs per window)
    ARGV[7] the limiter's duration (window, ms)

  Output:
    1  written (the version is now ARGV[1] + 1)
    0  another process changed the state since it was read: nothing written
]]
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', v + 1, 'ceiling', ARGV[2], 'rate', ARGV[3], 'decreasedAt', ARGV[4], 'increasedAt', ARGV[5])
redis.call('HSET', KEYS[2], 'max', ARGV[6], 'duration', ARGV[7])
return 1
