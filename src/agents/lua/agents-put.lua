--[[
  Writes one agent's record if it is still what the writer read (a
  compare-and-set on the whole stored JSON), and bumps the directory's
  version, which every process polls (src/agents/live.ts).

  KEYS[1]  the directory hash: agentId -> record JSON, '#version' -> counter
  ARGV[1]  agentId ('#' is not allowed in one, so it never meets '#version')
  ARGV[2]  the record as the writer read it; '' when it read none
  ARGV[3]  the new record JSON

  Returns 1 when written, 0 when the stored record is no longer ARGV[2]
  (another writer came first: read again and retry).
]]
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == false then current = '' end
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HINCRBY', KEYS[1], '#version', 1)
return 1
