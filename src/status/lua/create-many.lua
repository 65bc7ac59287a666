--[[
  Creates a QUEUED status record for each message that has none (StatusStore.createMany).

  Only fields that carry information are written (empty ones are skipped;
  updatedAt, attempts, channel and the first timeline entry are derived on
  read): this runs once per enqueued message, so every field costs throughput
  and memory.

  Input:
    KEYS[1..n] one status key (hash) per message

    ARGV[1] ttl of a new record, ms
    ARGV[2] now, ms epoch (its createdAt)
    then 7 per key, in KEYS order:
      agentId, to (masked), trafficType, batchId, expireAt,
      callback URL, callback scope ('' = none)

  Output:
    per key: '' when created now, else the state the record already had
]]
local out = {}
local ttl = ARGV[1]
local now = ARGV[2]
for i, key in ipairs(KEYS) do
  if redis.call('HSETNX', key, 'state', 'QUEUED') == 0 then
    out[i] = redis.call('HGET', key, 'state')
  else
    local b = 2 + (i - 1) * 7
    local fields = {'agentId', ARGV[b + 1], 'to', ARGV[b + 2], 'createdAt', now}
    if ARGV[b + 3] ~= '' then fields[#fields + 1] = 'trafficType'; fields[#fields + 1] = ARGV[b + 3] end
    if ARGV[b + 4] ~= '' then fields[#fields + 1] = 'batchId'; fields[#fields + 1] = ARGV[b + 4] end
    if ARGV[b + 5] ~= '' then fields[#fields + 1] = 'expireAt'; fields[#fields + 1] = ARGV[b + 5] end
    if ARGV[b + 6] ~= '' then fields[#fields + 1] = 'cb'; fields[#fields + 1] = ARGV[b + 6]; fields[#fields + 1] = 'cbs'; fields[#fields + 1] = ARGV[b + 7] end
    redis.call('HSET', key, unpack(fields))
    redis.call('PEXPIRE', key, ttl)
    out[i] = ''
  end
end
return out
