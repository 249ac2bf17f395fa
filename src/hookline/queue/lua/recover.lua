-- recover.lua: claims whose lease has run out become due again, at now.
--
-- Key layout (hookline.queue.keys): two sorted sets under one hash tag, an id in at most one.
--   KEYS[1]  due       member = delivery id, score = due time (ms since the Unix epoch)
--   KEYS[2]  inflight  member = delivery id, score = lease deadline (ms since the Unix epoch)
-- ARGV[1]  now_ms  the caller's clock (never the server's): expired means deadline <= now_ms
-- ARGV[2]  limit   the most claims to recover in this call (> 0)
--
-- This is how a worker killed mid-request loses nothing: its claims come back as due ids.
-- Returns the number of ids recovered (call again while it equals `limit`).

local CHUNK = 1000 -- ids per ZREM/ZADD call: well under Lua's unpack() limit

local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for first = 1, #ids, CHUNK do
  local last = math.min(first + CHUNK - 1, #ids)
  redis.call('ZREM', KEYS[2], unpack(ids, first, last))
  local args = {}
  for i = first, last do
    args[#args + 1] = ARGV[1]
    args[#args + 1] = ids[i]
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
return #ids
