-- The last event copied to Postgres; never recreates a record that was pruned meanwhile.
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'synced', ARGV[1]) end
return 1
