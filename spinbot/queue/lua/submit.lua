-- KEYS: plane stream, job, events, index, active, the owner's unfinished jobs (a set of job keys)
-- ARGV: job id, created, maxlen, nfields, fields..., event data, limit (0: none)
-- Returns {1, entry, event id}; {0} when the job exists; {-1, n} when the owner has n >= limit unfinished jobs.
if redis.call('EXISTS', KEYS[2]) == 1 then return {0} end
local nf = tonumber(ARGV[4])
local limit = tonumber(ARGV[6 + nf * 2] or '0')
if limit > 0 then
  -- A job leaves the active set when it ends (commit.lua, cancel_idle.lua, the sweep): the owner's set
  -- forgets such jobs here, so it heals whoever finished them, and whatever process died meanwhile.
  local held = 0
  for _, k in ipairs(redis.call('SMEMBERS', KEYS[6])) do
    if redis.call('SISMEMBER', KEYS[5], k) == 1 then held = held + 1 else redis.call('SREM', KEYS[6], k) end
  end
  if held >= limit then return {-1, held} end
end
local entry = redis.call('XADD', KEYS[1], '*', 'job', ARGV[1], 'version', '0')
local f = {}
for j = 1, nf * 2 do f[j] = ARGV[4 + j] end
redis.call('HSET', KEYS[2], 'entry', entry, 'stream', KEYS[1], unpack(f))
local ev = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'type', 'job', 'data', ARGV[5 + nf * 2])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[5], KEYS[2])
redis.call('SADD', KEYS[6], KEYS[2])
return {1, entry, ev}
