-- Put before `mark.lua` for a write-back: a marker a mirror writes back because Redis
-- lost it is skipped when its tombstone (KEYS[6]) says it was lifted on purpose since
-- (`unmark.lua`): a mirror that had not read the `del` event yet must not undo an
-- unrevoke. A revocation made afresh removes the tombstone, so it always wins.
-- Returns 0 when skipped.
if KEYS[6] and redis.call('EXISTS', KEYS[6]) == 1 then
  return 0
end
