-- Starts a refresh-token family (src/sessions/refresh/), replacing any of the same key.
-- KEYS: the family (a hash), its consumed tokens (a set).
-- ARGV: subject hash, current token hash, now (s), expires at (s), idle (s), ttl (ms:
-- to its absolute end or its idle timeout, whichever comes first), the family's
-- sealed record.
-- Nothing raw: every value is a SHA-256 (hex), a number, or sealed under a key derived
-- from the family's refresh tokens. Every key dies when the family
-- does: at its absolute end, or once idle (a rotation pushes that back).
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'sub', ARGV[1], 'cur', ARGV[2], 'last', ARGV[3], 'exp', ARGV[4],
  'idle', ARGV[5], 'end', '', 'data', ARGV[7], 'prev', '', 'succ', '')
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]))
return 1
