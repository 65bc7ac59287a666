--[[
  Moves one settled status record out of Redis, leaving its tombstone
  (Tombstones.evict, history/evictor.ts): only when the record is settled,
  has not moved since the cutoff, and every timeline entry it fed to the
  history feed is archived (its last entry's ID, field hf, is before the
  archiver's watermark). Checked and done in one step, so a move racing the
  eviction either happens first (and the record stays) or meets the tombstone.

  A tombstone is one field of a small hash: the message ID as 16 bytes, and an
  11-byte value of state code, phone check and createdAt, what a late DELIVERED
  or READ needs (tomb-move.lua): under 100 bytes where the record held 2 KB.

  Input:
    KEYS[1] status key (hash)
    KEYS[2] settled index (zset of refs)
    KEYS[3] failures index (zset of refs)
    KEYS[4] tombstone bucket of this generation (hash)

    ARGV[1] the ref (member of both indexes)
    ARGV[2] cutoff, ms epoch: a record moved after it is still hot
    ARGV[3] watermark: history feed entries before this ID are archived ('' when none is known)
    ARGV[4] the settled states with their codes, 'CODE:STATE' space-separated
    ARGV[5] the tombstone's field (the message ID as 16 bytes)
    ARGV[6] when the bucket expires, ms epoch

  Output: 'evicted' | 'hot' (moved since the cutoff) | 'behind' (not all archived)
          | 'live' (not settled) | 'gone' (no record)
]]
local statusKey, settledKey, failuresKey, tombKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ref, cutoff, watermark, codes = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]

local r = redis.call('HMGET', statusKey, 'state', 'updatedAt', 'hf', 'createdAt', 'e164', 'to')
local state, updatedAt, hf, createdAt, e164, masked = r[1], r[2], r[3], r[4], r[5], r[6]
if not state then
  redis.call('ZREM', settledKey, ref)
  return 'gone'
end
local code = string.match(' ' .. codes .. ' ', ' (%w):' .. state .. ' ')
if not code then
  redis.call('ZREM', settledKey, ref)
  return 'live'
end
if tonumber(updatedAt or '0') > cutoff then
  redis.call('ZADD', settledKey, updatedAt, ref)
  return 'hot'
end

-- Stream IDs 'ms-seq' compared as numbers, part by part.
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then return false end
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
if not hf or watermark == '' or not before(hf, watermark) then return 'behind' end

-- The value, 11 bytes (Redis's smallest allocation for it): the state's code,
-- upper case when the phone check is of the full number, lower case when of the
-- masked one (a record never sent keeps no full number); 4 bytes of the SHA-1
-- of that number; createdAt as 6 bytes, big-endian (ms fit in 48 bits).
local function bytesOfHex(hex) return (string.gsub(hex, '..', function(h) return string.char(tonumber(h, 16)) end)) end
local function bytes6(n)
  local out = ''
  for _ = 1, 6 do
    local b = n % 256
    out = string.char(b) .. out
    n = (n - b) / 256
  end
  return out
end
local phone = e164
if not phone then code, phone = string.lower(code), masked or '' end
local value = code .. bytesOfHex(string.sub(redis.sha1hex(phone), 1, 8)) .. bytes6(tonumber(createdAt or '0'))

redis.call('HSET', tombKey, ARGV[5], value)
redis.call('PEXPIREAT', tombKey, ARGV[6])
redis.call('DEL', statusKey)
redis.call('ZREM', settledKey, ref)
redis.call('ZREM', failuresKey, ref)
return 'evicted'
