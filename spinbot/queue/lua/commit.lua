-- KEYS: source stream, job, events, target stream (or ""-ish placeholder), active set
-- ARGV: group, consumer, entry, mode, maxlen, clear ("1": drop the n:/d: fields first),
--       payload: JSON [[field, value, ...], [type, data, ...], [target field, value, ...]], every item a string
--       (one argument, not one per item: redis-py's client-side work grew with the argument count)
-- mode: update | handoff | finish | dead
local group, consumer, entry, mode, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HGET', KEYS[2], 'entry') ~= entry or redis.call('HGET', KEYS[2], 'stream') ~= KEYS[1] then
  return {0}
end
local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], group, entry, entry, 1)
if not ok or #p == 0 or p[1][2] ~= consumer then return {0} end  -- not ok: the stream or group is gone
local payload = cjson.decode(ARGV[7])
local f, ev, t = payload[1], payload[2], payload[3]
if ARGV[6] == '1' then
  local keys = redis.call('HKEYS', KEYS[2])
  for _, k in ipairs(keys) do
    local p2 = string.sub(k, 1, 2)
    if p2 == 'n:' or p2 == 'd:' then redis.call('HDEL', KEYS[2], k) end
  end
end
if #f > 0 then
  redis.call('HSET', KEYS[2], unpack(f))
end
local out = {1, '', redis.call('HGET', KEYS[2], 'cancel') or '0'}
for j = 1, #ev, 2 do
  out[#out + 1] = redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'type', ev[j], 'data', ev[j + 1])
end
if mode == 'handoff' or mode == 'dead' then
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
