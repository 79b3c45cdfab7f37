-- KEYS: plane stream, job, events, index, active. ARGV: job id, created, maxlen, nfields, fields..., event data
if redis.call('EXISTS', KEYS[2]) == 1 then return {0} end
local entry = redis.call('XADD', KEYS[1], '*', 'job', ARGV[1], 'version', '0')
local nf = tonumber(ARGV[4])
local f = {}
for j = 1, nf * 2 do f[j] = ARGV[4 + j] end
redis.call('HSET', KEYS[2], 'entry', entry, 'stream', KEYS[1], unpack(f))
local ev = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'type', 'job', 'data', ARGV[5 + nf * 2])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[5], KEYS[2])
return {1, entry, ev}
