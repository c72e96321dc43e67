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
-- then     "1" when the trigger configuration is replaced (create, set_triggers), else "0";
--          when "1": serialized ObjectEvent ("" for none), m, then m pairs  index field, encoded targets
--
-- Returns {status, version, entry id or "", matched events, fields created, fields deleted,
--          new value (incr modes) or ""}
--   status 0 ok; 1 the object already exists (create); 2 no such object (update,
--   delete_fields, delete, set_triggers).  Nothing is written unless status is 0.
--
-- Events: a field that appears is CREATE (3); one whose bytes or type change is UPDATE (4);
-- one that disappears is DELETE (5); an unchanged value gives nothing.  Targets come from
-- one HGET of t:<c|u|d>:<field> per changed field.  One stream entry per write, and only
-- while the capture flag exists, the changes are mirrored into the shadow so that keyspace
-- capture does not report them a second time.
-- when some target matched:  o, v, d, ts, [tp], n, then per event i: e<i>, k<i>, [p<i>], t<i>
-- (a write with more than 500 matched events is split over several entries; the last id is
-- returned).  The entry format and the matching are in lib/events.lua.

local obj, meta, outbox, shadow, capture = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local mode, oid, depth, traceparent = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local events = ARGV[5] == "1"
local n = tonumber(ARGV[6])
local pos = 7

local had_fields = redis.call("EXISTS", obj) == 1
local exists = had_fields or redis.call("EXISTS", meta) == 1
local creating = {create = true, upsert = true, replace = true, setnx = true, incr = true,
                  incrfloat = true}
if mode == "create" and exists then return {1, 0, "", 0, 0, 0, ""} end
if not exists and not creating[mode] then return {2, 0, "", 0, 0, 0, ""} end

-- An increment can fail (not a number): do it before anything else is written.
local newvalue = ""
local incr_old = false
if mode == "incr" or mode == "incrfloat" then
  incr_old = redis.call("HGET", obj, ARGV[7])
  local cmd = (mode == "incr") and "HINCRBY" or "HINCRBYFLOAT"
  newvalue = tostring(redis.call(cmd, obj, ARGV[7], ARGV[8]))
end

local names, values, types = {}, {}, {}
local per_item = (mode == "delete_fields") and 1 or 3
for i = 1, n do
  names[i] = ARGV[pos]
  if per_item == 3 then
    values[i], types[i] = ARGV[pos + 1], ARGV[pos + 2]
  end
  pos = pos + per_item
end

-- Trigger configuration first, so a create's own events see the triggers it was given.
if ARGV[pos] == "1" then
  local serialized, m = ARGV[pos + 1], tonumber(ARGV[pos + 2])
  local old = redis.call("HKEYS", meta)
  local stale = {}
  for _, f in ipairs(old) do
    if string.sub(f, 1, 2) == "t:" or f == "ev" then stale[#stale + 1] = f end
  end
  chunked("HDEL", meta, stale)
  local fresh = {}
  if serialized ~= "" then fresh = {"ev", serialized} end
  for j = 0, m - 1 do
    fresh[#fresh + 1] = ARGV[pos + 3 + 2 * j]
    fresh[#fresh + 1] = ARGV[pos + 4 + 2 * j]
  end
  chunked("HSET", meta, fresh)
end

local changes = {}  -- {code, name, value or false}
local created, deleted = 0, 0

if mode == "func" then
  local code = string.sub(types[1], 1, 2)
  local output = values[1]
  if string.len(types[1]) > 2 then output = false end
  changes[1] = {code, names[1], output}
  per_item = 0
elseif mode == "incr" or mode == "incrfloat" then
  if not incr_old then
    changes[1] = {"c", ARGV[7], newvalue}
    created = 1
  elseif incr_old ~= newvalue then
    changes[1] = {"u", ARGV[7], newvalue}
  end
  per_item = 0
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

if per_item == 3 and n > 0 then
  local old, oldtypes = {}, {}
  old = chunked("HMGET", obj, names)
  oldtypes = chunked("HMGET", meta, typekeys(names))
  local args, settypes, cleartypes = {}, {}, {}
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
  chunked("HSET", obj, args)
  chunked("HSET", meta, settypes)
  chunked("HDEL", meta, cleartypes)
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
deleted = #removed
for _, name in ipairs(removed) do changes[#changes + 1] = {"d", name, false} end

-- Keep keyspace capture's shadow in step with what this write already reports.  A
-- shadow is complete when it exists or when the object had no fields before this write;
-- otherwise capture has not seen the object yet and will take it as it finds it.
if redis.call("EXISTS", capture) == 1 then
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

-- Match while the configuration still exists (delete removes it below).
local batches, matched = {}, 0
if events then batches, matched = match_events(meta, changes) end

local version = 0
if mode == "delete" then
  version = tonumber(redis.call("HGET", meta, "v") or "0") + 1
  redis.call("DEL", obj, meta)
else
  if #removed > 0 then
    chunked("HDEL", obj, removed)
    chunked("HDEL", meta, typekeys(removed))
  end
  if mode == "create" or (#changes > 0 and mode ~= "func") then
    version = redis.call("HINCRBY", meta, "v", 1)
  else
    version = tonumber(redis.call("HGET", meta, "v") or "0")
  end
end

local id = append_events(outbox, batches, oid, version, depth, traceparent)
return {0, version, id, matched, created, deleted, newvalue}
