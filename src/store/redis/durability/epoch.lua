-- A bucket's epoch marker (KEYS[1], `{prefix:bB}:epoch`), created when missing from the
-- server's clock. Stores run this when they connect (so a blocklist has its markers
-- before its first revocation) and for a marker they found missing; every write creates
-- it too (`scripts/feed.lua`). It has no TTL and nothing else writes it, so it only
-- goes missing, or changes, when Redis lost the bucket's data: a restart without
-- persistence, a flush, a replica that never had it promoted. Whoever knew the old
-- value then knows revocations may be gone.
-- Returns the marker and the feed counter (KEYS[2]; false when missing): a counter
-- lower than one seen before, under the same marker, is a loss too (a snapshot
-- reloaded, or a replica promoted, without the latest writes).
local seq = redis.call('GET', KEYS[2])
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  local now = redis.call('TIME')
  epoch = now[1] .. '.' .. string.format('%06d', tonumber(now[2]))
  redis.call('SET', KEYS[1], epoch)
end
return {epoch, seq}
