-- Removes a marker (token, session) and appends a `del` event to the change feed, so
-- that mirrors forget it too; both in this one script, so no reader sees one without
-- the other. `feed` (feed.lua, prepended) writes the event: kind `del`, the marker's
-- hash, and as value the kind of the marker removed (`t` or `x`).
-- KEYS: marker, feed, feed sequence, and (v2) the bucket's index, whose member for the
-- marker goes too. ARGV: feed cap, kind of the marker, hash.
-- Returns 1 when a marker was removed; 0 when there was none, and then appends nothing.
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
feed('del', ARGV[3], ARGV[2])
return 1
