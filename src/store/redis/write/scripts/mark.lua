-- Sets a marker unless it already lives longer.
-- KEYS: marker, feed, feed sequence, and (v2) the bucket's index, its epoch marker and
-- the marker's tombstone (see `unmark.lua`), which a new revocation removes. ARGV: feed trim (`cap:window_ms`, see feed.lua), ttl (ms), kind, hash, and
-- optionally the wake channel and the bucket's number.
-- Milliseconds throughout: `TTL` rounds to the nearest second, which could shorten a
-- record by up to half a second.
-- Running it twice (a retried write) changes nothing a reader could tell: the TTL only
-- ever goes up, and the second event repeats the first.
local ttl = tonumber(ARGV[2])
if KEYS[6] then
  redis.call('DEL', KEYS[6])
end
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('SET', KEYS[1], '1', 'PX', ttl)
end
feed(ARGV[3], ARGV[4], '1', ARGV[5], ARGV[6])
return 1
