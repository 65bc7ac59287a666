--[[
  Deletes the status records of one phone number (a data-protection erase).
  KEYS: the status records to look at (found by the caller in the archive).
  ARGV[1]: the full E.164 number; ARGV[2]: the same masked.
  A record is deleted only when it is that number's: its full number (`e164`,
  kept once sending began) equals ARGV[1], or, when it has none yet, its
  masked number equals ARGV[2]. Returns how many were deleted.
]]
local deleted = 0
for _, key in ipairs(KEYS) do
  local r = redis.call('HMGET', key, 'e164', 'to')
  if (r[1] and r[1] == ARGV[1]) or (not r[1] and r[2] and r[2] == ARGV[2]) then
    deleted = deleted + redis.call('DEL', key)
  end
end
return deleted
