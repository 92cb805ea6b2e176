-- What a load needs of the records KEYS, all of one bucket (one slot): for each key in
-- order, its PTTL (-1: no TTL, -2: gone) and, when ARGV[1]'s character at its position
-- is 'w' (a watermark), its value (false when gone or not a string). A marker's value
-- means nothing, so it is not read: one call per marker rather than two, and no
-- per-command round trip, parse or reply on the server for either, which is what bound
-- a load read key by key.
local flags = ARGV[1]
local out = {}
for i, key in ipairs(KEYS) do
  local ttl = redis.call('PTTL', key)
  out[2 * i - 1] = ttl
  local value = false
  if ttl ~= -2 and string.byte(flags, i) == 119 then
    local read = redis.pcall('GET', key)
    if type(read) == 'string' then value = read end
  end
  out[2 * i] = value
end
return out
