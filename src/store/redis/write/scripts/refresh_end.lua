-- Ends refresh-token families (logout), keeping them until their lifetime is over so
-- their tokens are told apart from unknown ones.
-- KEYS: the families (hashes). ARGV: their subject's hash.
for _, family in ipairs(KEYS) do
  if redis.call('HGET', family, 'sub') == ARGV[1] and redis.call('HGET', family, 'end') == '' then
    redis.call('HSET', family, 'end', 'out')
  end
end
return 1
