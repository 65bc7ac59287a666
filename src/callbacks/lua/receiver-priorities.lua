--[[
  The BullMQ priorities of new deliveries to one receiver, in order
  (Receivers.priorities; see "fair order" in receivers.ts). Each delivery joins
  the receiver's set of queued deliveries; its priority is the set's size then,
  never lower than the receiver's previous one (its tag), so one receiver's
  deliveries keep their order, and never above the limit.

  Input:
    KEYS[1] the receiver's hash (field tag: the last priority given; origin)
    KEYS[2] the receiver's queued deliveries (set of job IDs: its depth)

    ARGV[1] ttl of both keys, ms
    ARGV[2] the highest priority (BullMQ's limit; deeper backlogs share it)
    ARGV[3] the receiver's origin (stored for operators: keys name only its digest)
    ARGV[4...] the new deliveries' job IDs

  Output:
    a priority (at least 1) per job ID, in order
]]
local tag = tonumber(redis.call('HGET', KEYS[1], 'tag') or '0')
local limit = tonumber(ARGV[2])
local out = {}
for i = 4, #ARGV do
  redis.call('SADD', KEYS[2], ARGV[i])
  local depth = redis.call('SCARD', KEYS[2])
  if depth > tag then tag = math.min(depth, limit) end
  out[#out + 1] = math.max(tag, 1)
end
redis.call('HSET', KEYS[1], 'tag', tag, 'origin', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return out
