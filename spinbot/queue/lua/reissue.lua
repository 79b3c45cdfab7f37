-- Re-issue a job whose stream entry is dead, atomically re-checking that it is: the record still
-- names that entry at that version (so two sweepers, or a sweeper and the job's executor, cannot both
-- re-issue it), the job is unfinished, and the entry is gone from its stream, or is in it but neither
-- pending nor still to be delivered (its group lost it). A stream without the group is left alone:
-- the executors recreate the group from id 0, and the entry is then delivered as usual.
-- KEYS: target stream, job, old stream (or target), active. ARGV: expected entry, job id, version, group, reason
local old, group = ARGV[1], ARGV[4]
if (redis.call('HGET', KEYS[2], 'entry') or '') ~= old then return '' end
if (redis.call('HGET', KEYS[2], 'version') or '0') ~= ARGV[3] then return '' end
local status = redis.call('HGET', KEYS[2], 'status')
if status == false or status == 'completed' or status == 'failed' or status == 'cancelled' then return '' end
if old ~= '' and #redis.call('XRANGE', KEYS[3], old, old) > 0 then
  local ok, p = pcall(redis.call, 'XPENDING', KEYS[3], group, old, old, 1)
  if not ok or #p > 0 then return '' end
  local last = nil
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[3])) do
    local name, id = nil, nil
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then id = g[j + 1] end
    end
    if name == group then last = id end
  end
  if last == nil then return '' end
  local oms, oseq = string.match(old, '(%d+)-(%d+)')
  local lms, lseq = string.match(last, '(%d+)-(%d+)')
  oms, oseq, lms, lseq = tonumber(oms), tonumber(oseq), tonumber(lms), tonumber(lseq)
  if oms > lms or (oms == lms and oseq > lseq) then return '' end  -- still to be delivered
end
if old ~= '' then
  redis.call('XDEL', KEYS[3], old)
  pcall(redis.call, 'XACK', KEYS[3], group, old)
end
local entry = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2], 'version', ARGV[3], 'reissued', ARGV[5])
redis.call('HSET', KEYS[2], 'entry', entry, 'stream', KEYS[1])
redis.call('SADD', KEYS[4], KEYS[2])
return entry
