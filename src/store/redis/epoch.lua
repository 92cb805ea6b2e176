-- A bucket's epoch marker (KEYS[1], `{prefix:bB}:epoch`), created when missing from the
-- server's clock, once the bucket holds anything (its feed counter, KEYS[2], exists:
-- a prefix nobody wrote to gets no keys); nil while it holds nothing. It has no TTL
-- and nothing else writes it, so it only goes missing, or changes, when Redis lost the
-- bucket's data: a restart without persistence, a flush, a replica that never had it
-- promoted. Whoever knew the old value then knows revocations may be gone.
-- Returns the marker and the feed counter (false for either that is missing): a counter
-- lower than one seen before, under the same marker, is a loss too (a snapshot reloaded,
-- or a replica promoted, without the latest writes).
local seq = redis.call('GET', KEYS[2])
local epoch = redis.call('GET', KEYS[1])
if epoch then
  return {epoch, seq}
end
if not seq then
  return {false, false}
end
local now = redis.call('TIME')
epoch = now[1] .. '.' .. string.format('%06d', tonumber(now[2]))
redis.call('SET', KEYS[1], epoch)
return {epoch, seq}
