-- capture.lua: report a write that bypassed the library, by diffing an object against
-- its shadow (the last state the event system saw), then make the shadow current.
--
-- KEYS[1]  object hash     oprc:{cls:pid}:obj:<oid>
-- KEYS[2]  meta hash       oprc:{cls:pid}:meta:<oid>    (trigger index, version)
-- KEYS[3]  outbox stream   oprc:{cls:pid}:outbox
-- KEYS[4]  shadow hash     oprc:{cls:pid}:shadow:<oid>  (fields + "{synced}" sentinel)
-- KEYS[5]  runtime switch  as write.lua's KEYS[6]: while it says "off" for the class, the
--                          shadow is brought up to date and nothing is reported
--
-- ARGV[1]  object id as spelled in keys
-- ARGV[2]  "drop": the object ended (expired, evicted): remove its triggers too; "keep": no
-- ARGV[3]  "1": events enabled; "0": only bring the shadow up to date
--
-- Returns {changes, matched events, entry id or ""}, or the error "WRONGTYPE <key> is a
-- <type>, not a <type>" (before touching anything) when a key has the wrong type.
--
-- A missing shadow means the object predates capture (or was written before capture was
-- on): the shadow is created from the object and nothing is reported.  Otherwise: a field
-- in the object but not the shadow is CREATE, a different value UPDATE, a field only in the
-- shadow DELETE; the entry has the same shape as write.lua's (lib/events.lua; depth 0, no
-- trace context).

local obj, meta, outbox, shadow = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local oid, drop, events = ARGV[1], ARGV[2] == "drop", ARGV[3] == "1"
local SENTINEL = "{synced}"

local function as_map(flat)
  local map = {}
  for i = 1, #flat, 2 do map[flat[i]] = flat[i + 1] end
  return map
end

-- Redis does not roll a script back: check every key's type before the first write.
for i, want in ipairs({"hash", "hash", "stream", "hash"}) do
  local have = redis.call("TYPE", KEYS[i])["ok"]
  if have ~= "none" and have ~= want then
    return redis.error_reply("WRONGTYPE " .. KEYS[i] .. " is a " .. have .. ", not a " .. want)
  end
end

if events and redis.call("EXISTS", KEYS[5]) == 1 then
  local off, refused = switched_off(KEYS[5], outbox)
  if refused then return refused end
  events = not off
end

local current = redis.call("HGETALL", obj)
local function sync_shadow()
  redis.call("DEL", shadow)
  if #current > 0 or redis.call("EXISTS", meta) == 1 then
    local set = {SENTINEL, "1"}
    for i = 1, #current, 2 do
      if current[i] ~= SENTINEL then
        set[#set + 1] = current[i]
        set[#set + 1] = current[i + 1]
      end
    end
    chunked("HSET", shadow, set)
  end
end

if redis.call("EXISTS", shadow) == 0 then
  sync_shadow()
  if drop then redis.call("DEL", meta) end
  return {0, 0, ""}
end

local now_map = as_map(current)
local seen = as_map(redis.call("HGETALL", shadow))
local changes = {}
for i = 1, #current, 2 do
  local name, value = current[i], current[i + 1]
  if name ~= SENTINEL then
    if seen[name] == nil then
      changes[#changes + 1] = {"c", name, value, false}
    elseif seen[name] ~= value then
      changes[#changes + 1] = {"u", name, value, seen[name]}
    end
  end
end
for name, _ in pairs(seen) do
  if name ~= SENTINEL and now_map[name] == nil then
    changes[#changes + 1] = {"d", name, false, seen[name]}
  end
end

local matched, id = 0, ""
if events and #changes > 0 then
  -- Checked before the first write (lib/events.lua): a version that is not a number, an
  -- outbox without stream ids for the entries; the entry is the first write, so a failed
  -- XADD leaves nothing written.  Each is an error reply "CORRUPT ...".
  local version, bad = read_version(meta)
  if bad then return bad end
  local batches
  batches, matched = match_events(meta, changes)
  if #batches > 1 then
    bad = check_room(outbox, #batches)
    if bad then return bad end
  end
  local has_meta = redis.call("EXISTS", meta) == 1  -- a change counts as a write of the object
  if has_meta then
    bad = check_bump(meta, version)
    if bad then return bad end
  end
  local refused
  id, refused = append_events(outbox, batches, oid, has_meta and version + 1 or 0, "0", "")
  if refused then return refused end
  if has_meta then redis.call("HSET", meta, "v", version_text(version + 1)) end
end

if drop then
  redis.call("DEL", meta, shadow)
elseif #changes > 0 then
  sync_shadow()
end
return {#changes, matched, id}
