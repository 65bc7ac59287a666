--[[
  Reports this process's last second of sends and reads an agent's adaptive
  rate state (AdaptiveRate.read). Each process reports its own exact sliding
  second; the sums of the fresh reports are the agent's. A report too old to
  count is kept a while, then deleted.

  Input:
    KEYS[1] the rate state (hash: v, ceiling, rate, decreasedAt, increasedAt,
            and 'p:<process id>' = '<accepted>:<limited>:<reported at>' per process)

    ARGV[1] now, ms epoch
    ARGV[2] this process's id
    ARGV[3] its accepted calls over the last second
    ARGV[4] its rate-limited calls over the last second
    ARGV[5] a report older than this (ms) is not counted (from a process that stopped sending, or died)
    ARGV[6] a report older than this (ms) is deleted

  Output:
    {v, ceiling, rate, decreasedAt, increasedAt, accepted, limited}
    (v '0', ceiling and rate '' when there is no state yet; accepted and
    limited summed over the fresh reports, this one included)
]]
local now = tonumber(ARGV[1])
local freshMs, forgetMs = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('HSET', KEYS[1], 'p:' .. ARGV[2], ARGV[3] .. ':' .. ARGV[4] .. ':' .. ARGV[1])
local accepted, limited = 0, 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'p:' then
    local a, l, t = string.match(all[i + 1], '^(%d+):(%d+):(%d+)$')
    -- A report that does not parse counts as forgotten.
    local age = t and now - tonumber(t) or forgetMs + 1
    if age <= freshMs then
      accepted = accepted + tonumber(a)
      limited = limited + tonumber(l)
    elseif age > forgetMs then
      redis.call('HDEL', KEYS[1], all[i])
    end
  end
end
local st = redis.call('HMGET', KEYS[1], 'v', 'ceiling', 'rate', 'decreasedAt', 'increasedAt')
return {st[1] or '0', st[2] or '', st[3] or '', st[4] or '0', st[5] or '0', accepted, limited}
