-- Cancel a job whose entry nobody holds: remove the undelivered entry and finish the job, atomically.
-- KEYS: stream, job, events, active. ARGV: group, entry, maxlen, nfields, fields..., event data
if redis.call('HGET', KEYS[2], 'entry') ~= ARGV[2] or redis.call('HGET', KEYS[2], 'stream') ~= KEYS[1] then
  return 0
end
local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if ok and #p > 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
local keys = redis.call('HKEYS', KEYS[2])
for _, k in ipairs(keys) do
  local p2 = string.sub(k, 1, 2)
  if p2 == 'n:' or p2 == 'd:' then redis.call('HDEL', KEYS[2], k) end
end
local nf = tonumber(ARGV[4])
local f = {}
for j = 1, nf * 2 do f[j] = ARGV[4 + j] end
redis.call('HSET', KEYS[2], 'entry', '', 'stream', '', unpack(f))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'type', 'job', 'data', ARGV[5 + nf * 2])
redis.call('SREM', KEYS[4], KEYS[2])
return 1
