-- Raises a watermark (never lowers it), keeping it at least `ttl` milliseconds.
-- KEYS: watermark, feed, feed sequence, and (v2) the bucket's index and epoch marker
-- (a watermark is never lifted: the sixth key, a tombstone, is not used). ARGV: feed trim (see feed.lua),
-- mark, ttl (ms), kind, hash, and optionally the wake channel and the bucket's number.
-- Running it twice (a retried write) changes nothing a reader could tell: the mark and
-- the TTL only ever go up, and the second event repeats the first.
local mark = tonumber(ARGV[2])
local stored = redis.call('GET', KEYS[1])
local current = tonumber(stored or '')
if current ~= nil and current > mark then mark = current end
local ttl = tonumber(ARGV[3])
local left = redis.call('PTTL', KEYS[1])
if left > ttl then ttl = left end
redis.call('SET', KEYS[1], string.format('%d', mark), 'PX', ttl)
feed(ARGV[4], ARGV[5], string.format('%d', mark), ARGV[6], ARGV[7], stored or nil)
return 1
