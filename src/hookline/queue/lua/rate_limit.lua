-- rate_limit.lua: take tokens from the rate-limit buckets of several endpoints in one call.
--
-- Key layout (hookline.queue.keys): one hash per endpoint, every one under the hash tag {rate}.
--   KEYS[i]  the bucket of endpoint i: tokens = tokens left (a float), ts = when they were
--            counted (ms since the Unix epoch, on the callers' clocks)
-- ARGV[1]      now_ms       the caller's clock (never the server's)
-- ARGV[2]      min_idle_ms  how long an unused bucket is kept at least
-- ARGV[2i+1]   rate_i       tokens per second bucket i refills at (> 0)
-- ARGV[2i+2]   count_i      tokens wanted from bucket i now (>= 0)
--
-- A bucket holds at most max(1, rate_i) tokens (one second's worth; one whole token at least,
-- so a rate under 1/s can send at all) and starts full; a missing key is a full bucket.
-- Returns {granted_1, wait_ms_1, granted_2, wait_ms_2, ...}: how many of count_i may go now and,
-- when fewer than count_i, in how many ms bucket i holds its next whole token (else 0). The
-- arithmetic is ``queue.rate_limit.take_tokens``'s, which LocalRateLimiter runs in Python.

local EPSILON = 1e-9 -- a bucket refilled to 0.9999999999 token by float error holds a token

local now = tonumber(ARGV[1])
local min_idle = tonumber(ARGV[2])
local answer = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i + 1])
  local count = tonumber(ARGV[2 * i + 2])
  local capacity = math.max(1, rate)
  local tokens, ts = capacity, now
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  if state[1] and state[2] then
    -- A caller whose clock is behind the last one's refills nothing and moves ts no earlier.
    ts = tonumber(state[2])
    tokens = math.min(capacity, tonumber(state[1]) + math.max(0, now - ts) * rate / 1000)
    ts = math.max(ts, now)
  end
  local granted = math.min(count, math.floor(tokens + EPSILON))
  tokens = math.max(0, tokens - granted)
  local wait = 0
  if granted < count then
    wait = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
  end
  redis.call('HSET', key, 'tokens', string.format('%.17g', tokens), 'ts', string.format('%d', ts))
  -- Kept until it would be full again (then a missing key means the same), min_idle at least.
  redis.call('PEXPIRE', key, math.max(min_idle, math.ceil(capacity * 1000 / rate)))
  answer[#answer + 1] = granted
  answer[#answer + 1] = wait
end
return answer
