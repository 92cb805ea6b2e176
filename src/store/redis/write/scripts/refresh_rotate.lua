-- Rotates a refresh token of a family, atomically: of two rotations presenting the
-- same token, exactly one consumes it; the other is a reuse, or, within the grace
-- window, gets the successor the first one kept.
-- KEYS: the family (a hash), its consumed tokens (a set).
-- ARGV: presented token hash, next token hash, now (s), consumed-set member of the
-- presented token (its hash's first 16 bytes, hex), grace window (s), the next token
-- sealed for the grace window ('' when off).
-- Returns {outcome} or {'rotated', record} or {'repeated', record, successor}; outcome
-- reused, ended, expired or unknown.
local family = redis.call('HMGET', KEYS[1], 'cur', 'last', 'exp', 'idle', 'end', 'data', 'prev', 'succ')
if not family[1] then
  return {'unknown'}
end
local now = tonumber(ARGV[3])
if now >= tonumber(family[3]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {'expired'}
end
if now >= tonumber(family[2]) + tonumber(family[4]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {'expired'}
end
local consumed = redis.call('SISMEMBER', KEYS[2], ARGV[4]) == 1
local ours = consumed or family[1] == ARGV[1]
if family[5] ~= '' then
  if family[5] == 'reused' and consumed then
    return {'reused'}
  elseif ours then
    return {'ended'}
  end
  return {'unknown'}
end
if consumed and family[1] == ARGV[2] then
  -- This very rotation, run again (its reply was lost with its connection): the
  -- same answer, not a reuse.
  return {'rotated', family[6]}
elseif family[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'cur', ARGV[2], 'last', ARGV[3], 'prev', ARGV[1], 'succ', ARGV[6])
  redis.call('SADD', KEYS[2], ARGV[4])
  -- Nothing kept past the family's end: its absolute end, or idle from now.
  local ttl = math.min(tonumber(family[3]) - now, tonumber(family[4])) * 1000
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  return {'rotated', family[6]}
elseif consumed and family[7] == ARGV[1] and family[8] ~= ''
    and now < tonumber(family[2]) + tonumber(ARGV[5]) then
  return {'repeated', family[6], family[8]}
elseif consumed then
  redis.call('HSET', KEYS[1], 'end', 'reused')
  return {'reused'}
end
return {'unknown'}
