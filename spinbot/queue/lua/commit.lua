-- KEYS: source stream, job, events, target stream (or ""-ish placeholder), active set
-- ARGV: group, consumer, entry, mode, maxlen, nfields, clear ("1": drop the n:/d: fields first),
--       fields..., nevents, (type, data)..., ntarget, target fields...
-- mode: update | handoff | finish | dead
local group, consumer, entry, mode, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HGET', KEYS[2], 'entry') ~= entry or redis.call('HGET', KEYS[2], 'stream') ~= KEYS[1] then
  return {0}
end
local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], group, entry, entry, 1)
if not ok or #p == 0 or p[1][2] ~= consumer then return {0} end  -- not ok: the stream or group is gone
local i = 6
local nf = tonumber(ARGV[i]); i = i + 1
if ARGV[i] == '1' then
  local keys = redis.call('HKEYS', KEYS[2])
  for _, k in ipairs(keys) do
    local p2 = string.sub(k, 1, 2)
    if p2 == 'n:' or p2 == 'd:' then redis.call('HDEL', KEYS[2], k) end
  end
end
i = i + 1
if nf > 0 then
  local f = {}
  for j = 1, nf * 2 do f[j] = ARGV[i + j - 1] end
  redis.call('HSET', KEYS[2], unpack(f))
  i = i + nf * 2
end
local out = {1, '', redis.call('HGET', KEYS[2], 'cancel') or '0'}
local ne = tonumber(ARGV[i]); i = i + 1
for j = 1, ne do
  out[#out + 1] = redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'type', ARGV[i], 'data', ARGV[i + 1])
  i = i + 2
end
local nt = tonumber(ARGV[i]); i = i + 1
if mode == 'handoff' or mode == 'dead' then
  local t = {}
  for j = 1, nt * 2 do t[j] = ARGV[i + j - 1] end
  out[2] = redis.call('XADD', KEYS[4], '*', unpack(t))
end
if mode == 'handoff' then
  redis.call('HSET', KEYS[2], 'entry', out[2], 'stream', KEYS[4])
end
if mode ~= 'update' then
  redis.call('XACK', KEYS[1], group, entry)
  redis.call('XDEL', KEYS[1], entry)
end
if mode == 'finish' or mode == 'dead' then
  redis.call('HSET', KEYS[2], 'entry', '', 'stream', '')
  redis.call('SREM', KEYS[5], KEYS[2])
end
return out
