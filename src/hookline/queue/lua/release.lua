-- release.lua: give back claims that were never started; they are due again at `due_ms`.
--
-- Key layout (hookline.queue.keys): two sorted sets under one hash tag, an id in at most one.
--   KEYS[1]  due       member = delivery id, score = due time (ms since the Unix epoch)
--   KEYS[2]  inflight  member = delivery id, score = lease deadline (ms since the Unix epoch)
-- ARGV[1]   due_ms     when the released ids are due again
-- ARGV[2..] ids
--
-- Only ids still in `inflight` move: an id already completed, rescheduled or recovered is left
-- alone. Returns the number of ids released.

local released = 0
for i = 2, #ARGV do
  if redis.call('ZREM', KEYS[2], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    released = released + 1
  end
end
return released
