-- Starts a refresh-token family (src/sessions/refresh/), replacing any of the same key.
-- KEYS: the family (a hash), its consumed tokens (a set), its subject's families (a set).
-- ARGV: subject hash, current token hash, now (s), expires at (s), idle (s), ttl (ms),
-- family hash.
-- Nothing raw: every value is a SHA-256 (hex) or a number. Every key dies with the
-- family's absolute lifetime (the subject's set with its longest family).
local ttl = tonumber(ARGV[6])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'sub', ARGV[1], 'cur', ARGV[2], 'last', ARGV[3], 'exp', ARGV[4], 'idle', ARGV[5], 'end', '')
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('SADD', KEYS[3], ARGV[7])
if redis.call('PTTL', KEYS[3]) < ttl then
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return 1
