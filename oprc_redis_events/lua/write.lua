-- write.lua: one atomic write of one object, with its field-level events.
--
-- KEYS[1]  object hash     oprc:{cls:pid}:obj:<oid>
-- KEYS[2]  meta hash       oprc:{cls:pid}:meta:<oid>   (v, ev, t:<code>:<key>, y:<field>)
-- KEYS[3]  outbox stream   oprc:{cls:pid}:outbox
-- KEYS[4]  shadow hash     oprc:{cls:pid}:shadow:<oid>  (keyspace capture's last seen state)
-- KEYS[5]  capture flag    oprc:{cls:pid}:capture       (set while keyspace capture is on)
--
-- ARGV[1]  mode: create | update | upsert | replace | delete_fields | delete | set_triggers
--          | setnx (HSETNX: set absent fields only) | incr | incrfloat (HINCRBY[FLOAT])
--          | func (a function completed or failed: FUNC_COMPLETE / FUNC_ERROR, no field change)
-- ARGV[2]  object id as spelled in keys (goes into the entry as `o`)
-- ARGV[3]  depth of this write (0 for a user's own write)
-- ARGV[4]  W3C traceparent, or ""
-- ARGV[5]  "1": events enabled (diff, match, XADD); "0": plain write
-- ARGV[6]  n = number of field items, then the items:
--            set modes (create, update, upsert, replace, setnx): n triples  name, value, type
--              ("0" byte, "1" crdt map); incr, incrfloat: 1 triple  name, increment, "0";
--              func: 1 triple  fn_id, output or error text, "fc" | "fe" (+ "0": no output)
--            delete_fields: n names;  delete, set_triggers: n = 0
-- then     "0": the trigger configuration stays; "1": it is replaced (create, set_triggers);
--          "2": it is replaced only if `ev` is still the expected one (a trigger edit).
--          When "1" or "2": serialized ObjectEvent ("" for none), m, then m pairs  index
--          field, encoded targets; when "2", then the expected serialized ObjectEvent ("").
--
-- Returns {status, version, entry id or "", matched events, fields created, fields deleted,
--          new value (incr modes) or "", 1 if the object existed before the write else 0}
--   status 0 ok; 1 the object already exists (create); 2 no such object (update,
--   delete_fields, delete, set_triggers); 3 (mode "2") the configuration is neither the
--   expected one nor already the new one.  Nothing is written unless status is 0.
--   An error reply "CORRUPT ..." (lib/events.lua) refuses a write that could not be applied
--   whole: a key of the wrong type, a version that is not a number (except for delete,
--   which then reports version 0) or that is at its largest (999999999999999) when the
--   write would raise it, a full outbox.
--
-- Events: a field that appears is CREATE (3); one whose bytes or type change is UPDATE (4);
-- one that disappears is DELETE (5); an unchanged value gives nothing.  Targets come from
-- one HGET of t:<c|u|d>:<field> per changed field.  One stream entry per write, and only
-- while the capture flag exists, the changes are mirrored into the shadow so that keyspace
-- capture does not report them a second time.
-- when some target matched:  o, v, d, ts, [tp], n, then per event i: e<i>, k<i>, [p<i>], t<i>
-- (a write with more than 500 matched events is split over several entries; the last id is
-- returned).  The entry format and the matching are in lib/events.lua.
--
-- Order: checks and reads first; then the XADD (the only write that can still fail: when
-- the outbox's ids run out, which check_room() rules out for a second entry); then the other
-- writes.  An increment is the exception: HINCRBY is its first write (it fails on a value
-- that is not a number) and its entry follows, with the outbox's room checked beforehand.

local obj, meta, outbox, shadow, capture = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local mode, oid, depth, traceparent = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local events = ARGV[5] == "1"
local n = tonumber(ARGV[6])
local pos = 7
local SET_MODES = {create = true, update = true, upsert = true, replace = true, setnx = true}
local CREATING = {create = true, upsert = true, replace = true, setnx = true, incr = true,
                  incrfloat = true}
local incrementing = mode == "incr" or mode == "incrfloat"

-- 1. Checks: the keys' types and the version.
local capturing = redis.call("EXISTS", capture) == 1
local bad = check_type(obj, "hash") or check_type(meta, "hash")
  or (events and check_type(outbox, "stream")) or (capturing and check_type(shadow, "hash"))
if bad then return bad end
local version, bad_version = read_version(meta)
if bad_version then
  -- delete works whatever the version: it removes obj and meta, its DELETEs carry version 0
  if mode ~= "delete" then return bad_version end
  version = -1
end

local had_fields = redis.call("EXISTS", obj) == 1
local exists = had_fields or redis.call("EXISTS", meta) == 1
local existed = exists and 1 or 0
if mode == "create" and exists then return {1, 0, "", 0, 0, 0, "", 1} end
if not exists and not CREATING[mode] then return {2, 0, "", 0, 0, 0, "", 0} end

local names, values, types = {}, {}, {}
local per_item = (mode == "delete_fields") and 1 or 3
for i = 1, n do
  names[i] = ARGV[pos]
  if per_item == 3 then
    values[i], types[i] = ARGV[pos + 1], ARGV[pos + 2]
  end
  pos = pos + per_item
end

-- 2. The new trigger configuration, if any: written below, matched against from here on.
local replacing, index, fresh = ARGV[pos] ~= "0", nil, {}
if replacing then
  local serialized, m = ARGV[pos + 1], tonumber(ARGV[pos + 2])
  index = {}
  if serialized ~= "" then fresh = {"ev", serialized} end
  for j = 0, m - 1 do
    local field, targets = ARGV[pos + 3 + 2 * j], ARGV[pos + 4 + 2 * j]
    index[field] = targets
    fresh[#fresh + 1] = field
    fresh[#fresh + 1] = targets
  end
  if ARGV[pos] == "2" then
    local current = redis.call("HGET", meta, "ev") or ""
    if current == serialized then return {0, version, "", 0, 0, 0, "", existed} end
    if current ~= ARGV[pos + 3 + 2 * m] then return {3, version, "", 0, 0, 0, "", existed} end
  end
end

-- 3. The changes, read without writing anything.
local changes = {}  -- {code, name, value or false}
local created = 0
local args, settypes, cleartypes = {}, {}, {}

if mode == "func" then
  local output = values[1]
  if string.len(types[1]) > 2 then output = false end
  changes[1] = {string.sub(types[1], 1, 2), names[1], output}
end

if mode == "setnx" and n > 0 then
  -- keep only the fields that are absent
  local present = chunked("HMGET", obj, names)
  local kn, kv, kt = {}, {}, {}
  for i = 1, n do
    if not present[i] then
      kn[#kn + 1], kv[#kv + 1], kt[#kt + 1] = names[i], values[i], types[i]
    end
  end
  names, values, types, n = kn, kv, kt, #kn
end

local function typekeys(list)
  local out = {}
  for i, name in ipairs(list) do out[i] = "y:" .. name end
  return out
end

if SET_MODES[mode] and n > 0 then
  local old = chunked("HMGET", obj, names)
  local oldtypes = chunked("HMGET", meta, typekeys(names))
  for i = 1, n do
    local oldtype = oldtypes[i] or "0"
    if not old[i] then
      created = created + 1
      changes[#changes + 1] = {"c", names[i], values[i]}
    elseif old[i] ~= values[i] or oldtype ~= types[i] then
      changes[#changes + 1] = {"u", names[i], values[i]}
    end
    args[#args + 1] = names[i]
    args[#args + 1] = values[i]
    if types[i] ~= "0" then
      settypes[#settypes + 1] = "y:" .. names[i]
      settypes[#settypes + 1] = types[i]
    elseif oldtypes[i] then
      cleartypes[#cleartypes + 1] = "y:" .. names[i]
    end
  end
end

local removed = {}
if mode == "replace" then
  local given = {}
  for i = 1, n do given[names[i]] = true end
  for _, name in ipairs(redis.call("HKEYS", obj)) do
    if not given[name] then removed[#removed + 1] = name end
  end
elseif mode == "delete_fields" and n > 0 then
  local present = chunked("HMGET", obj, names)
  for i = 1, n do
    if present[i] then removed[#removed + 1] = names[i] end
  end
elseif mode == "delete" then
  removed = redis.call("HKEYS", obj)
end
for _, name in ipairs(removed) do changes[#changes + 1] = {"d", name, false} end

-- 4. The first write: the increment, or the outbox entry.
local newvalue = ""
local batches, matched = {}, 0
if incrementing then
  local incr_old = redis.call("HGET", obj, names[1])
  local code = incr_old and "u" or "c"
  if events and redis.call("HEXISTS", meta, "t:" .. code .. ":" .. names[1]) == 1 then
    bad = check_room(outbox, 1)
    if bad then return bad end
  end
  bad = check_bump(meta, version)  -- checked before HINCRBY, the first write
  if bad then return bad end
  local cmd = (mode == "incr") and "HINCRBY" or "HINCRBYFLOAT"
  newvalue = tostring(redis.call(cmd, obj, names[1], values[1]))
  if incr_old ~= newvalue then
    changes[1] = {code, names[1], newvalue}
    if not incr_old then created = 1 end
  end
end
if events then batches, matched = match_events(meta, changes, index) end
if #batches > 1 then
  bad = check_room(outbox, #batches)
  if bad then return bad end
end

local bumps = mode == "create" or mode == "delete" or (#changes > 0 and mode ~= "func")
if bumps and mode ~= "delete" then
  bad = check_bump(meta, version)
  if bad then return bad end
end
local new_version = bumps and version + 1 or version
-- The outbox's first entry wakes the workers at once (a hint: a refusal is ignored).
local new_outbox = #batches > 0 and redis.call("EXISTS", outbox) == 0
local id, refused = append_events(outbox, batches, oid, new_version, depth, traceparent)
if refused then return refused end
if new_outbox then redis.pcall("PUBLISH", "oprc:new-outbox", outbox) end

-- 5. The other writes, none of which can fail now.
if replacing then
  local stale = {}
  for _, f in ipairs(redis.call("HKEYS", meta)) do
    if string.sub(f, 1, 2) == "t:" or f == "ev" then stale[#stale + 1] = f end
  end
  chunked("HDEL", meta, stale)
  chunked("HSET", meta, fresh)
end
chunked("HSET", obj, args)
chunked("HSET", meta, settypes)
chunked("HDEL", meta, cleartypes)

-- Keep keyspace capture's shadow in step with what this write already reports.  A
-- shadow is complete when it exists or when the object had no fields before this write;
-- otherwise capture has not seen the object yet and will take it as it finds it.
if capturing then
  if mode == "delete" then
    redis.call("DEL", shadow)
  elseif redis.call("EXISTS", shadow) == 1 or not had_fields then
    local set, del = {"{synced}", "1"}, {}
    for _, ch in ipairs(changes) do
      if ch[1] == "fc" or ch[1] == "fe" then  -- not a field
      elseif ch[1] == "d" then del[#del + 1] = ch[2] else
        set[#set + 1] = ch[2]
        set[#set + 1] = ch[3]
      end
    end
    chunked("HSET", shadow, set)
    chunked("HDEL", shadow, del)
  end
end

if mode == "delete" then
  redis.call("DEL", obj, meta)
else
  chunked("HDEL", obj, removed)
  chunked("HDEL", meta, typekeys(removed))
  if bumps then redis.call("HSET", meta, "v", version_text(new_version)) end
end
return {0, new_version, id, matched, created, #removed, newvalue, existed}
