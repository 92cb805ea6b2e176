-- Rotates a refresh token of a family, atomically: of two rotations presenting the
-- same token, exactly one consumes it; the other is a reuse.
-- KEYS: the family (a hash), its consumed tokens (a set).
-- ARGV: subject hash, presented token hash, next token hash, now (s), consumed-set
-- member of the presented token (its hash's first 16 bytes, hex).
-- Returns: rotated, reused, ended, expired or unknown.
local family = redis.call('HMGET', KEYS[1], 'sub', 'cur', 'last', 'exp', 'idle', 'end')
if not family[1] or family[1] ~= ARGV[1] then
  return 'unknown'
end
local now = tonumber(ARGV[4])
if now >= tonumber(family[4]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 'expired'
end
local consumed = redis.call('SISMEMBER', KEYS[2], ARGV[5]) == 1
local ours = consumed or family[2] == ARGV[2]
if family[6] ~= '' then
  if family[6] == 'reused' and consumed then
    return 'reused'
  elseif ours then
    return 'ended'
  end
  return 'unknown'
end
if now >= tonumber(family[3]) + tonumber(family[5]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 'expired'
end
if consumed and family[2] == ARGV[3] then
  -- This very rotation, run again (its reply was lost with its connection): the
  -- same answer, not a reuse.
  return 'rotated'
elseif family[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'cur', ARGV[3], 'last', ARGV[4])
  redis.call('SADD', KEYS[2], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
  return 'rotated'
elseif consumed then
  redis.call('HSET', KEYS[1], 'end', 'reused')
  return 'reused'
end
return 'unknown'
