-- schedule.lua: set the due time of many ids (an upsert); an id in flight leaves `inflight`.
--
-- Key layout (hookline.queue.keys): two sorted sets under one hash tag, an id in at most one.
--   KEYS[1]  due       member = delivery id, score = due time (ms since the Unix epoch)
--   KEYS[2]  inflight  member = delivery id, score = lease deadline (ms since the Unix epoch)
-- ARGV     due_ms_1, id_1, due_ms_2, id_2, ...  (pairs; a later pair for the same id wins)
--
-- Returns the number of pairs. Both moves happen in this one script, so a concurrent claim sees
-- the id either still in flight or due at its new time, never in both sets or in neither.

local CHUNK = 1000 -- arguments per ZADD call (500 pairs): well under Lua's unpack() limit

for first = 1, #ARGV, CHUNK do
  local last = math.min(first + CHUNK - 1, #ARGV)
  redis.call('ZADD', KEYS[1], unpack(ARGV, first, last))
  local ids = {}
  for i = first + 1, last, 2 do
    ids[#ids + 1] = ARGV[i]
  end
  redis.call('ZREM', KEYS[2], unpack(ids))
end
return #ARGV / 2
