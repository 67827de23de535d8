-- How many entries of a stream have an id up to ARGV[1] (for a group's ENTRIESREAD, so Redis
-- can go on counting its lag after `changes replay` moves it). Reads ids in pages of 1000.
-- KEYS: the stream. ARGV: the last id counted.
local total, start = 0, '-'
while true do
  local page = redis.call('XRANGE', KEYS[1], start, ARGV[1], 'COUNT', 1000)
  total = total + #page
  if #page < 1000 then return total end
  start = '(' .. page[#page][1]
end
