--[[
  Parks an event on a message whose own step is under way (StatusStore.park);
  transition.lua applies it when the message settles. Checked and written in
  one step, so no settle can slip between the two. One event of each type is
  enough: a repeat is the same fact.

  Input:
    KEYS[1] status key (hash; parked events in its field 'pend', a JSON array of {t, e})
    KEYS[2] metrics hash (counts inbound|parked)

    ARGV[1] the waiting states, space-separated
    ARGV[2] the event's type (DELIVERED, READ, TTL_EXPIRATION_REVOKED...)
    ARGV[3] the event, as the intake's JSON
    ARGV[4] the most events one record keeps parked

  Output:
    'PARKED'  parked now, or an event of this type already was (or the record is full)
    a state   the message is no longer waiting: the caller handles the event again
    false     no record
]]
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return false end
if not string.find(' ' .. ARGV[1] .. ' ', ' ' .. cur .. ' ', 1, true) then return cur end
local parked = redis.call('HGET', KEYS[1], 'pend')
local events = parked and cjson.decode(parked) or {}
for _, p in ipairs(events) do
  if p.t == ARGV[2] then return 'PARKED' end
end
if #events < tonumber(ARGV[4]) then
  events[#events + 1] = {t = ARGV[2], e = ARGV[3]}
  redis.call('HSET', KEYS[1], 'pend', cjson.encode(events))
  redis.call('HINCRBY', KEYS[2], 'inbound|parked', 1)
end
return 'PARKED'
