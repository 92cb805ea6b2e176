-- Appends a change-feed event for the key just written (KEYS[1]), in the same script
-- as the write so that no reader sees one without the other: `seq` from INCR on
-- KEYS[3], then XADD to KEYS[2], capped near ARGV[1] entries, with the key's absolute
-- expiry in Unix milliseconds (the mirror needs the expiry, not a TTL that ages while
-- the event waits in the stream). Then, when given a wake channel (`{prefix}:wake`),
-- publishes the bucket's number on it, for mirrors to read that feed at once: best
-- effort (mirrors read the feeds on their own schedule anyway), so its failure fails
-- nothing. Classic PUBLISH has no key: on a cluster it reaches every node.
local function feed(kind, hash, value, wake, bucket)
  local pttl = redis.call('PTTL', KEYS[1])
  local now = redis.call('TIME')
  local expires = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + pttl
  local seq = redis.call('INCR', KEYS[3])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*',
    'seq', seq, 'kind', kind, 'hash', hash, 'value', value, 'expires_ms', string.format('%d', expires))
  if wake then
    pcall(redis.call, 'PUBLISH', wake, bucket)
  end
end
