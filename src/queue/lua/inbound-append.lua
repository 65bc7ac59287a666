--[[
  Webhook intake (StreamInboundIntake.enqueue): appends a verified event to the
  intake stream unless its dedupe ID was seen within the dedupe window, in one
  step, so a redelivered webhook is queued once.

  Input:
    KEYS[1] dedupe key (string, set with a TTL)
    KEYS[2] intake stream

    ARGV[1] dedupe TTL, ms ('' = the event has no dedupe ID: always appended)
    ARGV[2] the event, JSON (the stream entry's field 'e')

  Output:
    1  appended
    0  a duplicate: nothing written
]]
if ARGV[1] ~= '' and not redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then return 0 end
redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
return 1
