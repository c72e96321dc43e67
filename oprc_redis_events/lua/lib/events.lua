-- lib/events.lua: shared by write.lua and capture.lua; the loader (scripts.py) puts it in
-- front of each of them, since a Redis script cannot import another.
--
-- The outbox entry format lives here and only here (decoded by outbox.py):
--   o, v, d, ts, [tp], n, then per event i: e<i> (type), k<i> (field or fn id),
--   [p<i>] (new value / output), t<i> (encoded targets)
-- A change is {code, key, value or false}; code c | u | d (data) or fc | fe (function).

local EVENT_TYPES = {c = "3", u = "4", d = "5", fc = "1", fe = "2"}
local EVENTS_PER_ENTRY = 500  -- keeps unpack() within Lua's limits

-- Lua's unpack() is limited to a few thousand values: send long lists in chunks.
local function chunked(cmd, key, list)
  local out = {}
  for i = 1, #list, 1000 do
    local r = redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
    if type(r) == "table" then
      for _, x in ipairs(r) do out[#out + 1] = x end
    end
  end
  return out
end

-- The matched events of `changes`, one HGET of t:<code>:<key> per change, grouped
-- EVENTS_PER_ENTRY to an entry.  Returns (batches, number matched).
local function match_events(meta, changes)
  local batches, matched = {}, 0
  local entry, count = nil, 0
  for _, ch in ipairs(changes) do
    local targets = redis.call("HGET", meta, "t:" .. ch[1] .. ":" .. ch[2])
    if targets then
      if entry == nil or count == EVENTS_PER_ENTRY then
        entry, count = {}, 0
        batches[#batches + 1] = entry
      end
      count = count + 1
      matched = matched + 1
      entry.n = count
      local i = tostring(count)
      entry[#entry + 1] = "e" .. i
      entry[#entry + 1] = EVENT_TYPES[ch[1]]
      entry[#entry + 1] = "k" .. i
      entry[#entry + 1] = ch[2]
      if ch[3] then
        entry[#entry + 1] = "p" .. i
        entry[#entry + 1] = ch[3]
      end
      entry[#entry + 1] = "t" .. i
      entry[#entry + 1] = targets
    end
  end
  return batches, matched
end

-- XADD one entry per batch; returns the last entry id ("" when there was none).
local function append_events(outbox, batches, oid, version, depth, traceparent)
  if #batches == 0 then return "" end
  local now = redis.call("TIME")
  local ts = tostring(tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
  local id = ""
  for _, entry in ipairs(batches) do
    local fields = {"o", oid, "v", tostring(version), "d", depth, "ts", ts}
    if traceparent ~= "" then
      fields[#fields + 1] = "tp"
      fields[#fields + 1] = traceparent
    end
    fields[#fields + 1] = "n"
    fields[#fields + 1] = tostring(entry.n)
    for _, x in ipairs(entry) do fields[#fields + 1] = x end
    id = redis.call("XADD", outbox, "*", unpack(fields))
  end
  return id
end
