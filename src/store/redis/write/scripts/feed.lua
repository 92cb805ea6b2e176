-- Appends a change-feed event for the key just written (KEYS[1]), in the same script
-- as the write so that no reader sees one without the other: `seq` from INCR on
-- KEYS[3], then XADD to KEYS[2] with the key's absolute expiry in Unix milliseconds
-- (the mirror needs the expiry, not a TTL that ages while the event waits in the
-- stream).
--
-- Retention (ARGV[1], `cap:window_ms`, or a bare `cap`): the feed only has to cover a
-- mirror's reconnect, since a mirror that finds a gap reloads the bucket from its index.
-- So events are kept by age (`XADD MINID ~`, the stream's ids being its clock in
-- milliseconds): those of the last `window_ms`, and no older than the longest-lived
-- record the bucket's index holds (an older event describes a record every reloading
-- mirror gets from the index anyway, for no more than it would read from the feed).
-- Then a safety bound by count: past `cap` entries (a burst), `XTRIM MAXLEN ~ cap`.
-- Both trims are approximate (whole stream nodes go, the default 100 entries each):
-- cheap, and never the entry just added. Then, when given a wake channel (`{prefix}:wake`),
-- publishes the bucket's number on it, for mirrors to read that feed at once: best
-- effort (mirrors read the feeds on their own schedule anyway), so its failure fails
-- nothing. Classic PUBLISH has no key: on a cluster it reaches every node.
--
-- With KEYS[5], the bucket's epoch marker (see `epoch.lua`) is created here when it is
-- missing, in the same script as the bucket's first write: a store that reads the
-- markers can only ever miss a loss of writes made while no marker existed, and now
-- there are none. Created after a loss too, with a new value, which is how a store
-- that knew the old one tells.
--
-- With KEYS[4], the bucket's index (a sorted set: member `kind:hash` for a marker,
-- `kind:hash:value` for a watermark, score the expiry in Unix milliseconds) is kept in
-- step too: what a loading mirror reads instead of scanning every key. Its expired
-- members are dropped first; `replaced` is a watermark's value before this write, whose
-- member goes; a `del` event removes the marker's member. The v1 keys have no index.
local function member(kind, hash, value)
  if kind == 's' or kind == 'all' then
    return kind .. ':' .. hash .. ':' .. value
  end
  return kind .. ':' .. hash
end

-- How long (ms) the feed keeps its events: the window, or less when every live record
-- of the bucket expires sooner (`horizon`, from the index; nil without one).
local function retained(window, horizon)
  if horizon and horizon < window then
    return math.max(horizon, 0)
  end
  return window
end

local function trim_after(now_ms, horizon)
  local cap, window = string.match(ARGV[1], '^(%d+):(%d+)$')
  if not cap then
    cap = ARGV[1]
  else
    local keep = retained(tonumber(window), horizon)
    redis.call('XTRIM', KEYS[2], 'MINID', '~', string.format('%d', math.max(now_ms - keep, 0)))
  end
  if redis.call('XLEN', KEYS[2]) > tonumber(cap) then
    redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', cap)
  end
end

local function feed(kind, hash, value, wake, bucket, replaced)
  local pttl = redis.call('PTTL', KEYS[1])
  local now = redis.call('TIME')
  if KEYS[5] and redis.call('EXISTS', KEYS[5]) == 0 then
    redis.call('SET', KEYS[5], now[1] .. '.' .. string.format('%06d', tonumber(now[2])))
  end
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local expires = now_ms + pttl
  local seq = redis.call('INCR', KEYS[3])
  redis.call('XADD', KEYS[2], '*',
    'seq', seq, 'kind', kind, 'hash', hash, 'value', value, 'expires_ms', string.format('%d', expires))
  local horizon = nil
  if KEYS[4] then
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', string.format('(%d', now_ms))
    if kind == 'del' then
      redis.call('ZREM', KEYS[4], member(value, hash, '1'))
    else
      if replaced and replaced ~= value then
        redis.call('ZREM', KEYS[4], member(kind, hash, replaced))
      end
      redis.call('ZADD', KEYS[4], string.format('%d', expires), member(kind, hash, value))
      -- The index lasts as long as its longest record: a bucket no one writes to again
      -- does not keep its expired members for ever.
      if redis.call('PTTL', KEYS[4]) < pttl then
        redis.call('PEXPIRE', KEYS[4], pttl)
      end
    end
    local longest = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
    horizon = longest[2] and (tonumber(longest[2]) - now_ms) or 0
  end
  trim_after(now_ms, horizon)
  if wake then
    pcall(redis.call, 'PUBLISH', wake, bucket)
  end
end
