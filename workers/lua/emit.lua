-- KEYS: emitted (the owner's hash), closed, flushing, stream, stats, recent, target (or ''),
--       version, the earlier layout's emitted key (read only).
-- ARGV: batch id, change json, maxlen, emitted ttl, summary json (with __ID__), status, kept,
--       modified_at the data carries ('' for none), '1' when only a resync's events made it,
--       retention (ms; entries older than this are trimmed, by the id's time).
-- Returns the new entry id, or the existing one prefixed with '=' when already emitted.
local existing = redis.call('HGET', KEYS[1], ARGV[1]) or redis.call('GET', KEYS[9])
if existing then return '=' .. existing end
local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', tonumber(ARGV[3]), '*', 'change', ARGV[2])
local now_ms = tonumber(string.match(id, '^(%d+)-'))
local oldest = now_ms - tonumber(ARGV[10])
if oldest > 0 then
  redis.call('XTRIM', KEYS[4], 'MINID', '~', string.format('%d-0', oldest))
end
redis.call('HSET', KEYS[1], ARGV[1], id)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
if ARGV[8] ~= '' then
  local known = redis.call('HGET', KEYS[8], 'modified_at')
  if not known or ARGV[8] > known then
    redis.call('HSET', KEYS[8], 'modified_at', ARGV[8], 'by_resync', ARGV[9])
  elseif ARGV[8] == known and ARGV[9] == '0' then
    redis.call('HSET', KEYS[8], 'by_resync', '0')
  end
  redis.call('EXPIRE', KEYS[8], tonumber(ARGV[4]))
end
redis.call('HINCRBY', KEYS[5], 'changes', 1)
redis.call('HINCRBY', KEYS[5], 'status:' .. ARGV[6], 1)
local recent = string.gsub(ARGV[5], '__ID__', id, 1)
redis.call('LPUSH', KEYS[6], recent)
redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[7]) - 1)
if KEYS[7] ~= '' and redis.call('EXISTS', KEYS[7]) == 1 then
  redis.call('HINCRBY', KEYS[7], 'changes', 1)
end
return id
