-- Removes a marker (token, session) and appends a `del` event to the change feed, so
-- that mirrors forget it too; both in this one script, so no reader sees one without
-- the other. `feed` (feed.lua, prepended) writes the event: kind `del`, the marker's
-- hash, and as value the kind of the marker removed (`t` or `x`).
-- KEYS: marker, feed, feed sequence, and (v2) the bucket's index, whose member for the
-- marker goes too, its epoch marker, and the marker's tombstone: `{p:bB}:lifted:t:{hash}`
-- (or `x`), kept as long as the marker had left to live, so that a mirror writing back
-- what Redis lost (`write_back.lua`) does not bring back what was lifted. ARGV: feed
-- trim (see feed.lua), kind of the marker, hash.
-- Returns 1 when a marker was removed; 0 when there was none, and then appends nothing.
local left = redis.call('PTTL', KEYS[1])
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
if KEYS[6] and left > 0 then
  redis.call('SET', KEYS[6], '1', 'PX', left)
end
feed('del', ARGV[3], ARGV[2])
return 1
