-- add_missing.lua: make due the ids the queue holds neither as due nor in flight; leave the rest.
--
-- Key layout (hookline.queue.keys): two sorted sets under one hash tag, an id in at most one.
--   KEYS[1]  due       member = delivery id, score = due time (ms since the Unix epoch)
--   KEYS[2]  inflight  member = delivery id, score = lease deadline (ms since the Unix epoch)
-- ARGV     due_ms_1, id_1, due_ms_2, id_2, ...  (pairs)
--
-- Returns how many ids were added. Check and add happen in this one script, so an id claimed by
-- a worker a moment ago is never made due a second time (schedule.lua would end that claim).

local added = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i + 1]
  if not redis.call('ZSCORE', KEYS[2], id) then
    added = added + redis.call('ZADD', KEYS[1], 'NX', ARGV[i], id)
  end
end
return added
