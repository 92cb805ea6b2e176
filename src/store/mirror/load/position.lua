-- The feed position a load starts from, read atomically: the sequence number (KEYS[2])
-- and the id of the last event in the feed (KEYS[1]). Both come from one instant, so an
-- event written during the load is either counted in `seq` and found after `id`, or
-- neither.
local seq = redis.call('GET', KEYS[2]) or '0'
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then return {seq, last[1][1]} end
return {seq, '0-0'}
