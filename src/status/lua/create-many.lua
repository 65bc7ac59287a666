--[[
  Creates a QUEUED status record for each message that has none (StatusStore.createMany).

  Only fields that carry information are written (empty ones are skipped;
  updatedAt, attempts, channel and the first timeline entry are derived on
  read): this runs once per enqueued message, so every field costs throughput
  and memory.

  A message that settled and left Redis (its tombstone, tombstones.ts) is not
  created again: its ID was used, and a second send under it would be a
  second message in the history (and could fall back to SMS twice).

  Input:
    KEYS[1..n] one status key (hash) per message
    KEYS[n+1..4n] three tombstone buckets per message, newest generation first

    ARGV[1] ttl of a new record, ms
    ARGV[2] now, ms epoch (its createdAt)
    ARGV[3] n, the number of messages
    ARGV[4] the settled states with their tombstone codes, 'CODE:STATE' space-separated
    then 8 per key, in KEYS order:
      agentId, to (masked), trafficType, batchId, expireAt,
      callback URL, callback scope ('' = none), tombstone field ('' = none)

  Output:
    per key: '' when created now, else the state the record (or its tombstone) already had
]]
local out = {}
local ttl = ARGV[1]
local now = ARGV[2]
local n = tonumber(ARGV[3])
local codes = ARGV[4]

-- The state a message's tombstone holds, or nil.
local function tombstoneState(i, field)
  if field == '' then return nil end
  for g = 0, 2 do
    local value = redis.call('HGET', KEYS[n + (i - 1) * 3 + 1 + g], field)
    if value then
      return string.match(' ' .. codes .. ' ', ' ' .. string.upper(string.sub(value, 1, 1)) .. ':(%u[%u_]*) ')
    end
  end
  return nil
end

for i = 1, n do
  local key = KEYS[i]
  local b = 4 + (i - 1) * 8
  local left = redis.call('EXISTS', key) == 0 and tombstoneState(i, ARGV[b + 8])
  if left then
    out[i] = left
  elseif redis.call('HSETNX', key, 'state', 'QUEUED') == 0 then
    out[i] = redis.call('HGET', key, 'state')
  else
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
