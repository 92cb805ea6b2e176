-- Adds a refresh-token family to its subject's families (src/sessions/refresh/), so a
-- log-out-everywhere finds it; written before the family itself.
-- KEYS: the subject's families (a set). ARGV: the family's hash, its ttl (ms).
-- The set dies with the subject's longest family.
local ttl = tonumber(ARGV[2])
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
