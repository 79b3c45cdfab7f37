-- Remove consumers from the group, each only while it holds no pending entry (XGROUP DELCONSUMER
-- would drop its pending entries with it: they would never be redelivered). Atomic, so an entry
-- claimed between a caller's XINFO and this script keeps its consumer.
-- KEYS[1]: the plane stream; ARGV[1]: the group; ARGV[2..]: consumer names. Returns the names removed.
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local removed = {}
for i = 2, #ARGV do
  local held = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[i])
  if type(held) == 'table' and held.err == nil and #held == 0 then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[i])
    removed[#removed + 1] = ARGV[i]
  end
end
return removed
