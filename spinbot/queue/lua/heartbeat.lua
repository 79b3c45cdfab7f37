-- Keep own claims alive: XCLAIM JUSTID resets the idle time without counting a delivery. An entry
-- that is no longer in its stream is not XCLAIMed (Redis 7 would drop it from the pending list).
-- KEYS: stream. ARGV: group, consumer, ids... Returns (id, reason) pairs for the ids no longer ours:
-- gone (not in the stream), nogroup (the stream's group is gone), unclaimed (nobody's), stolen.
local lost = {}
for i = 3, #ARGV do
  local id, reason = ARGV[i], nil
  if #redis.call('XRANGE', KEYS[1], id, id) == 0 then
    reason = 'gone'
  else
    local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], id, id, 1)
    if not ok then reason = 'nogroup'
    elseif #p == 0 then reason = 'unclaimed'
    elseif p[1][2] ~= ARGV[2] then reason = 'stolen'
    end
  end
  if reason then
    lost[#lost + 1] = id
    lost[#lost + 1] = reason
  else
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  end
end
return lost
