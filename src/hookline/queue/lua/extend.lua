-- extend.lua: move the lease deadline of ids that are still in flight.
--
-- Key layout (hookline.queue.keys): two sorted sets under one hash tag, an id in at most one.
--   KEYS[1]  due       member = delivery id, score = due time (ms since the Unix epoch); unused
--   KEYS[2]  inflight  member = delivery id, score = lease deadline (ms since the Unix epoch)
-- ARGV[1]   deadline_ms  the new lease deadline (now_ms + lease)
-- ARGV[2..] ids
--
-- ZADD XX updates members that exist and adds none, so a claim that was lost (recovered, then
-- due or claimed again) is not resurrected. Returns the number of ids still in flight.
-- KEYS[1] is declared so every queue script takes the same KEYS (and Cluster sees one slot).

local CHUNK = 500 -- ids per ZADD call (1000 arguments): well under Lua's unpack() limit

local extended = 0
for first = 2, #ARGV, CHUNK do
  local last = math.min(first + CHUNK - 1, #ARGV)
  local args = {}
  for i = first, last do
    if redis.call('ZSCORE', KEYS[2], ARGV[i]) then
      args[#args + 1] = ARGV[1]
      args[#args + 1] = ARGV[i]
      extended = extended + 1
    end
  end
  if #args > 0 then
    redis.call('ZADD', KEYS[2], 'XX', unpack(args))
  end
end
return extended
