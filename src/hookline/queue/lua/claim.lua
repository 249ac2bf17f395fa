-- claim.lua: claim up to `limit` due ids, oldest due time first, each with a lease.
--
-- Key layout (hookline.queue.keys): two sorted sets under one hash tag, an id in at most one.
--   KEYS[1]  due       member = delivery id, score = due time (ms since the Unix epoch)
--   KEYS[2]  inflight  member = delivery id, score = lease deadline (ms since the Unix epoch)
-- ARGV[1]  now_ms       the caller's clock (never the server's): due means score <= now_ms
-- ARGV[2]  limit        the most ids to claim (> 0)
-- ARGV[3]  deadline_ms  the lease deadline every claimed id gets (now_ms + lease)
--
-- Returns the claimed ids, oldest due time first (ties by id). Each id leaves `due` and enters
-- `inflight` inside this one script, so two callers never claim the same id.

local CHUNK = 1000 -- ids per ZREM/ZADD call: well under Lua's unpack() limit

local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for first = 1, #ids, CHUNK do
  local last = math.min(first + CHUNK - 1, #ids)
  redis.call('ZREM', KEYS[1], unpack(ids, first, last))
  local args = {}
  for i = first, last do
    args[#args + 1] = ARGV[3]
    args[#args + 1] = ids[i]
  end
  redis.call('ZADD', KEYS[2], unpack(args))
end
return ids
