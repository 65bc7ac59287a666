--[[
  A webhook event about a message that left Redis (Tombstones.apply): checks
  the event's phone against the tombstone's, and moves a late DELIVERED or READ
  there when the state machine allows it, appending the move to the history
  feed, so the archive learns it once (a second one is refused: already there).

  Input:
    KEYS[1..3] the tombstone buckets that may hold it, newest generation first
    KEYS[4] metrics hash
    KEYS[5] history feed (stream)

    ARGV[1] the tombstone's field (the message ID as 16 bytes)
    ARGV[2] the state to move to, or '' to look only
    ARGV[3] now, ms epoch
    ARGV[4] the settled states with their codes, 'CODE:STATE' space-separated
    ARGV[5] the phone check of the event's number (4 bytes of the SHA-1 of the E.164)
    ARGV[6] the same of its masked form
    ARGV[7] agentId, ARGV[8] messageId, ARGV[9] the event (DELIVERED, READ...)
    ARGV[10] the history feed's approximate MAXLEN
    ARGV[11...] the states the move is allowed from

  Output:
    {0, false}      no tombstone
    {-1, state}     the event's number is not the message's: nothing changes
    {0, state}      looked only, or the move is not allowed from the state it is in
    {1, from}       moved
]]
local field, target, now, codes = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local FIRST_ALLOWED = 11

local key, value
for i = 1, 3 do
  value = redis.call('HGET', KEYS[i], field)
  if value then key = KEYS[i] break end
end
if not key then return {0, false} end

-- The value (evict.lua): the state's code (lower case: the check is of the masked
-- number), 4 bytes of phone check, createdAt in 6 bytes.
if #value ~= 11 then return {0, false} end
local code, check = string.sub(value, 1, 1), string.sub(value, 2, 5)
local masked = code ~= string.upper(code)
local created = 0
for i = 6, 11 do created = created * 256 + string.byte(value, i) end
local state = string.match(' ' .. codes .. ' ', ' ' .. string.upper(code) .. ':(%u[%u_]*) ')
if not state then return {0, false} end
if check ~= (masked and ARGV[6] or ARGV[5]) then return {-1, state} end
if target == '' then return {0, state} end

local allowed = false
for i = FIRST_ALLOWED, #ARGV do
  if ARGV[i] == state then allowed = true break end
end
if not allowed then return {0, state} end

local newCode = string.match(' ' .. codes .. ' ', ' (%w):' .. target .. ' ')
if masked then newCode = string.lower(newCode) end
redis.call('HSET', key, field, newCode .. string.sub(value, 2))
local h = {a = ARGV[7], m = ARGV[8], s = target, p = state, t = now, c = created, e = ARGV[9], d = 'after the hot window'}
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[10], '*', 'h', cjson.encode(h))
redis.call('HINCRBY', KEYS[4], 'state|' .. target .. '|' .. ARGV[7], 1)
return {1, state}
