-- lib/events.lua: shared by write.lua and capture.lua; the loader (scripts.py) puts it in
-- front of each of them, since a Redis script cannot import another.
--
-- The outbox entry format lives here and only here (decoded by outbox.py):
--   o, v, d, [tp], n, then per event i: e<i> (type), k<i> (field or fn id),
--   [p<i>] (new value / output), [q<i>] (old value, only for targets that need it), t<i>
--   (encoded targets).  The write's time is the entry id's milliseconds (no field: a TIME
--   call would cost a script more than the rest of its entry); entries written before carry
--   it as ts, which the reader still takes.
-- A change is {code, key, value or false, [old value or false]}; code c | u | d (data) or
-- fc | fe (function).
--
-- Checks: a script runs every check below before its first write, so that a write is
-- refused whole, never applied half.  A check returns nil, or an error reply that the script
-- returns as it is: "WRONGTYPE <key> is a <type>, not a <type>: fix or delete it" (Redis' own
-- code for a key of the wrong type) or "CORRUPT <what is wrong, naming the key>: <what to
-- do>"; the Python side turns both into CorruptedStateError.

local EVENT_TYPES = {}  -- code -> EventType number: the loader fills it from protocol/codes.py
local EVENTS_PER_ENTRY = 500  -- keeps unpack() within Lua's limits
local MAX_ID_PART = "18446744073709551615"  -- 2^64 - 1: both parts of the largest stream id

local function corrupt(text)
  return redis.error_reply("CORRUPT " .. text)
end

-- `key` holds a `wanted` (or nothing); else an error reply.
local function check_type(key, wanted)
  local found = redis.call("TYPE", key)["ok"]
  if found ~= wanted and found ~= "none" then
    return redis.error_reply("WRONGTYPE " .. key .. " is a " .. found .. ", not a " .. wanted ..
      ": fix or delete it")
  end
  return nil
end

-- Whether the runtime switch (protocol/switch.py: a hash, "*" or a class id -> "off")
-- turns events off for the partition of `outbox` (oprc:{cls:pid}:outbox), read only when
-- the caller's EXISTS found the switch; a switch of the wrong type: nil and the refusal.
local function switched_off(switch, outbox)
  local cls = string.match(outbox, "{(.*):%d+}")
  local flags = redis.pcall("HMGET", switch, "*", cls)
  if flags.err then return nil, check_type(switch, "hash") or redis.error_reply(flags.err) end
  return flags[1] == "off" or flags[2] == "off", nil
end

-- The version `v` of a meta hash (0 when absent), or nil and an error reply when it is not
-- a non-negative integer (at most 15 digits, so that Lua's numbers hold it exactly).  `v`,
-- when given, is the field as the caller already read it (false: absent).
local function read_version(meta, v)
  if v == nil then v = redis.call("HGET", meta, "v") end
  if not v then return 0, nil end
  if (v == "0" or string.find(v, "^[1-9]%d*$")) and #v <= 15 then return tonumber(v), nil end
  local shown = string.gsub(string.sub(v, 1, 40), "[^%w%p ]", "?")
  return nil, corrupt("field v (the version) of " .. meta .. " is '" .. shown ..
    "', not a non-negative integer: set it (HSET " .. meta .. " v <version>) or delete the object")
end

local function version_text(n)
  return string.format("%d", n)  -- tostring() would print 1e+15
end

-- The largest version read_version() accepts: a write that would go past it is refused, so
-- that `v` never becomes a value no write or read can use.
local MAX_VERSION = 999999999999999

-- nil when the object's version may go up by one, else the error reply refusing the write.
local function check_bump(meta, version)
  if version < MAX_VERSION then return nil end
  return corrupt("field v (the version) of " .. meta .. " is " .. version_text(version) ..
    ", the largest version there is, and this write would take it past: delete the object, " ..
    "or set a lower version (HSET " .. meta .. " v <version>)")
end

-- Whether `needed` more entries fit in the outbox: XADD fails once the last generated id is
-- 2^64-1 - 2^64-1.  (Only ids whose time part is 2^64-1 come close.)
local function check_room(outbox, needed)
  if redis.call("EXISTS", outbox) == 0 then return nil end
  -- a writer's ACL user may append to the outbox but not read it (XINFO STREAM reads):
  -- then the check is skipped, and only an XADD refused whole can still report a full outbox
  local info, last = redis.pcall("XINFO", "STREAM", outbox), ""
  if info.err then return nil end
  for i = 1, #info, 2 do
    if info[i] == "last-generated-id" then last = info[i + 1] end
  end
  local ms, seq = string.match(last, "^(%d+)-(%d+)$")
  if ms ~= MAX_ID_PART then return nil end
  -- room when seq <= 2^64-1 - needed, compared as 20-digit decimal strings (needed < 10^6)
  local limit = string.sub(MAX_ID_PART, 1, 13) .. string.format("%07d", 9551615 - needed)
  if #seq < 20 or seq <= limit then return nil end
  return corrupt(outbox .. " has reached the largest stream id (" .. last ..
    "), so no entry can be added: let the worker drain it, then delete it")
end

-- The error reply for an XADD that failed (it is always a script's first write).
local function stream_refused(outbox, reply)
  if string.find(reply.err, "last possible ID", 1, true) then
    return check_room(outbox, 1) or redis.error_reply(reply.err)
  end
  return redis.error_reply(reply.err)
end

-- Lua's unpack() is limited to a few thousand values: send long lists in chunks.  Returns
-- the reply (of HMGET...), or for a list too long for one call the replies joined.
local function chunked(cmd, key, list)
  local count = #list
  if count == 0 then return list end
  if count <= 1000 then return redis.call(cmd, key, unpack(list)) end
  local out = {}
  for i = 1, count, 1000 do
    local r = redis.call(cmd, key, unpack(list, i, math.min(i + 999, count)))
    if type(r) == "table" then
      for _, x in ipairs(r) do out[#out + 1] = x end
    end
  end
  return out
end

-- The matched events of `changes`, grouped EVENTS_PER_ENTRY to an entry; the targets of a
-- change are index[t:<code>:<key>] when an index (a new configuration, not written yet) is
-- given, else known[<code>][<key>] when the caller already read field t:<code>:<key> of
-- `meta` (false: absent), else one HGET of that field.  Returns (batches, number matched).
-- Targets starting with "!" (byte 33, protocol/triggers.py OLD_MARK) need the field's
-- previous value: the mark is dropped and the entry gets q<i> = the old value, ch[4] when
-- the caller knows it (false: absent), else read from `obj` (not written yet).
local function match_events(meta, changes, index, known, obj)
  local batches, matched = {}, 0
  local entry, count = nil, 0
  for _, ch in ipairs(changes) do
    local targets
    if index then
      targets = index["t:" .. ch[1] .. ":" .. ch[2]]
    else
      local seen = known and known[ch[1]]
      if seen then targets = seen[ch[2]] end
      if targets == nil then targets = redis.call("HGET", meta, "t:" .. ch[1] .. ":" .. ch[2]) end
    end
    if targets then
      local old = false
      if string.byte(targets, 1) == 33 then
        targets = string.sub(targets, 2)
        old = ch[4]
        if old == nil and obj and (ch[1] == "u" or ch[1] == "d") then
          old = redis.call("HGET", obj, ch[2])
        end
      end
      if entry == nil or count == EVENTS_PER_ENTRY then
        entry, count = {}, 0
        batches[#batches + 1] = entry
      end
      count = count + 1
      matched = matched + 1
      entry.n = count
      local i = count == 1 and "1" or tostring(count)  -- the first event's names as constants
      entry[#entry + 1] = count == 1 and "e1" or "e" .. i
      entry[#entry + 1] = EVENT_TYPES[ch[1]]
      entry[#entry + 1] = count == 1 and "k1" or "k" .. i
      entry[#entry + 1] = ch[2]
      if ch[3] then
        entry[#entry + 1] = count == 1 and "p1" or "p" .. i
        entry[#entry + 1] = ch[3]
      end
      if old then
        entry[#entry + 1] = "q" .. i
        entry[#entry + 1] = old
      end
      entry[#entry + 1] = count == 1 and "t1" or "t" .. i
      entry[#entry + 1] = targets
    end
  end
  return batches, matched
end

-- XADD one entry per batch.  Returns the last entry id ("" when there was none), or nil and
-- the error reply of an XADD that failed.  Callers run it before their other writes and
-- check_room() first when there is more than one batch, so only a first XADD can fail and
-- a failure leaves nothing written.
local function append_events(outbox, batches, oid, version, depth, traceparent)
  if #batches == 0 then return "", nil end
  local id = ""
  for _, entry in ipairs(batches) do
    local fields = {"o", oid, "v", version_text(version), "d", depth}
    if traceparent ~= "" then
      fields[#fields + 1] = "tp"
      fields[#fields + 1] = traceparent
    end
    fields[#fields + 1] = "n"
    fields[#fields + 1] = entry.n == 1 and "1" or tostring(entry.n)
    for _, x in ipairs(entry) do fields[#fields + 1] = x end
    local reply = redis.pcall("XADD", outbox, "*", unpack(fields))
    if type(reply) == "table" and reply.err then
      -- a write may leave the outbox's type to its XADD: report it as check_type() would
      return nil, check_type(outbox, "stream") or stream_refused(outbox, reply)
    end
    id = reply
  end
  return id, nil
end
