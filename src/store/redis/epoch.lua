-- A bucket's epoch marker (KEYS[1], `{prefix:bB}:epoch`): created when missing, from the
-- server's clock, and answered with whether this call created it. It has no TTL and is
-- written by nothing else, so it only goes missing, or changes, when Redis lost the
-- bucket's data: a restart without persistence, a flush, a replica that never had it
-- promoted. Whoever knew the old value then knows revocations may be gone.
local epoch = redis.call('GET', KEYS[1])
if epoch then
  return {epoch, 0}
end
local now = redis.call('TIME')
epoch = now[1] .. '.' .. string.format('%06d', tonumber(now[2]))
redis.call('SET', KEYS[1], epoch)
return {epoch, 1}
