-- write.lua: one atomic write of one object, with its field-level events.
--
-- KEYS[1]  object hash     oprc:{cls:pid}:obj:<oid>
-- KEYS[2]  meta hash       oprc:{cls:pid}:meta:<oid>   (v, ev, t:<code>:<key>, y:<field>)
-- KEYS[3]  outbox stream   oprc:{cls:pid}:outbox
-- KEYS[4]  shadow hash     oprc:{cls:pid}:shadow:<oid>  (keyspace capture's last seen state)
-- KEYS[5]  capture flag    oprc:{cls:pid}:capture       (set while keyspace capture is on)
-- KEYS[6]  runtime switch  oprc:switch, or on Redis Cluster its slot's copy oprc:switch:{<tag>}
--                          (protocol/switch.py): while it says "off" for the class, a write
--                          is made as with ARGV[5] "0"
--
-- (ARGV[1] "batch": many writes of one partition in one call, see the end of this file.)
--
-- ARGV[1]  mode: create | update | upsert | replace | delete_fields | delete | set_triggers
--          | setnx (HSETNX: set absent fields only) | incr | incrfloat (HINCRBY[FLOAT])
--          | func (a function completed or failed: FUNC_COMPLETE / FUNC_ERROR, no field change)
-- ARGV[2]  object id as spelled in keys (goes into the entry as `o`)
-- ARGV[3]  depth of this write (0 for a user's own write)
-- ARGV[4]  W3C traceparent, or ""
-- ARGV[5]  "1": events enabled (diff, match, XADD) unless the switch is off; "0": plain write
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
--          new value (incr modes) or "", 1 if the object existed before the write else 0};
--          the quick path leaves out the last three (0, "", 1: each element of a reply
--          costs Redis about as much as a script argument; client/core.py tells the two
--          apart by their length, QUICK_REPLY_LEN)
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
-- when some target matched:  o, v, d, [tp], n, then per event i: e<i>, k<i>, [p<i>],
-- [q<i>] (the old value, for targets that need it: a condition or oprc.include_old), t<i>
-- (a write with more than 500 matched events is split over several entries; the last id is
-- returned).  The entry format and the matching are in lib/events.lua.
--
-- Order: checks and reads first; then the XADD (the only write that can still fail: when
-- the outbox's ids run out, which check_room() rules out for a second entry); then the other
-- writes.  An increment is the exception: HINCRBY is its first write (it fails on a value
-- that is not a number) and its entry follows, with the outbox's room checked beforehand.

-- The script runs in three parts: this file's quick path, then the shared library
-- lua/lib/events.lua, which the loader puts in place of the line "--@library" below, then
-- the rest of this file.  A write the quick path serves returns before the library's
-- functions are even defined (inside a script, defining a function costs about as much as
-- a small command).

local outbox, capture = KEYS[3], KEYS[5]
local outbox_exists = false  -- known to exist: a batch's later writes need not ask again
-- at most this many fields are read with one HMGET of the meta hash (version, value types
-- and the triggers they may fire); a larger write reads its triggers one HGET per change
local PREFETCH_MAX = 64
-- EVENT_TYPES.c and .u and lib/events.lua's MAX_VERSION: the loader fills them in
local CREATED, UPDATED, MAX_VERSION = nil, nil, nil
-- the capture flag and the switch are both absent in the common case: one EXISTS tells
-- (when it finds either, the part after the library reads which, and the switch)
local flagged = redis.call("EXISTS", capture, KEYS[6]) > 0
local capturing, switched = false, false

-- The common write first: an update or upsert of an existing object that leaves its
-- trigger configuration alone, while keyspace capture is off.  Inside a script every
-- redis.call, and every table, number-to-text conversion and closure, costs Redis far more
-- than a plain command does, so this path makes as few as it can: one HMGET of the meta hash
-- (version, value types and the written fields' triggers), one read of the object, then
-- XADD, HSET obj, HSET meta.  It answers nil, having written nothing, on anything else: no
-- object or version, a version that is not a plain number or is at its largest, a key of
-- the wrong type (the reads and the XADD fail with WRONGTYPE before any write), no outbox
-- yet (its first entry also wakes the workers), a full outbox.  The general path below
-- then does the write, or refuses it, exactly as it always has.

-- The write of one field, the most common one: no table but its entry's and the reply, no
-- function but itself (defining one costs a call: the others below serve quick_many).
local function quick_one(A, o, obj, meta)
  local name, value, vtype = A[o + 7], A[o + 8], A[o + 9]
  if A[o + 10] ~= "0" then return nil end
  -- the object first: then only the triggers of the event it can be (t:c or t:u) are read
  local was, m = redis.pcall("HGET", obj, name), nil
  if type(was) == "table" then return nil end
  local events = A[o + 5] == "1" and not switched
  if events then
    m = redis.pcall("HMGET", meta, "v", "y:" .. name, (was and "t:u:" or "t:c:") .. name)
  else
    m = redis.pcall("HMGET", meta, "v", "y:" .. name)
  end
  local v = m[1]  -- the version: a plain non-negative integer (see read_version())
  if m.err or not v or #v > 15 or (v ~= "0" and not string.find(v, "^[1-9]%d*$")) then
    return nil
  end
  local version, oldtype, code = tonumber(v), m[2], nil
  if version >= MAX_VERSION then return nil end
  if not was then
    code = "c"
  elseif was ~= value or (oldtype or "0") ~= vtype then
    code = "u"
  end
  local new_version, targets = code and version + 1 or version, nil
  local vt = code and string.format("%d", new_version) or v
  if events and code then targets = m[3] end
  local id = ""
  if targets then
    local traceparent, kind, old = A[o + 4], code == "c" and CREATED or UPDATED, false
    if string.byte(targets, 1) == 33 then  -- "!" (OLD_MARK): the target needs the old value
      targets, old = string.sub(targets, 2), was
    end
    if traceparent == "" and not old then
      -- the commonest entry, spelled out: no traceparent, no old value (no table to fill)
      id = redis.pcall("XADD", outbox, "NOMKSTREAM", "*", "o", A[o + 2], "v", vt, "d",
        A[o + 3], "n", "1", "e1", kind, "k1", name, "p1", value, "t1", targets)
    else
      -- the fields of append_events(): [tp], then [q1] before t1
      local ev, e = {"e1", kind, "k1", name, "p1", value, false, false, false, false}, 6
      if old then ev[7], ev[8], e = "q1", old, 8 end
      ev[e + 1], ev[e + 2] = "t1", targets
      if traceparent == "" then
        id = redis.pcall("XADD", outbox, "NOMKSTREAM", "*", "o", A[o + 2], "v", vt, "d",
          A[o + 3], "n", "1", unpack(ev, 1, e + 2))
      else
        id = redis.pcall("XADD", outbox, "NOMKSTREAM", "*", "o", A[o + 2], "v", vt, "d",
          A[o + 3], "tp", traceparent, "n", "1", unpack(ev, 1, e + 2))
      end
    end
    if type(id) ~= "string" then return nil end
    outbox_exists = true
  elseif events then  -- nothing to append: the outbox's type is still checked
    local found = redis.call("TYPE", outbox)["ok"]
    if found ~= "stream" and found ~= "none" then return nil end
  end
  redis.call("HSET", obj, name, value)
  if vtype == "0" and oldtype then redis.call("HDEL", meta, "y:" .. name) end
  if vtype ~= "0" and code then
    redis.call("HSET", meta, "y:" .. name, vtype, "v", vt)
  elseif vtype ~= "0" then
    redis.call("HSET", meta, "y:" .. name, vtype)
  elseif code then
    redis.call("HSET", meta, "v", vt)
  end
  return {0, new_version, id, targets and 1 or 0, was and 0 or 1}
end

-- The quick path serves while keyspace capture is off (a test turns it off to compare).
local quick_on = not capturing
local tried = false  -- this call's write already went to the quick path
if quick_on and not flagged and ARGV[6] == "1" and (ARGV[1] == "update" or ARGV[1] == "upsert")
then
  local reply = quick_one(ARGV, 0, KEYS[1], KEYS[2])
  if reply then return reply end
  tried = true
end

-- The version's text when it is a plain non-negative integer (see read_version()).
local function plain_version(v)
  return v and #v <= 15 and (v == "0" or string.find(v, "^[1-9]%d*$")) ~= nil
end

-- XADD of a quick write's entry (the fields of append_events(), then ev[1 .. e]) to an
-- outbox that exists: its id, or nil when there is no outbox yet or the XADD failed.
local function quick_append(A, o, vt, count, ev, e)
  local oid, depth, traceparent, id = A[o + 2], A[o + 3], A[o + 4], nil
  if traceparent == "" then
    id = redis.pcall("XADD", outbox, "NOMKSTREAM", "*", "o", oid, "v", vt, "d", depth,
      "n", count, unpack(ev, 1, e))
  else
    id = redis.pcall("XADD", outbox, "NOMKSTREAM", "*", "o", oid, "v", vt, "d", depth,
      "tp", traceparent, "n", count, unpack(ev, 1, e))
  end
  if type(id) ~= "string" then return nil end
  outbox_exists = true
  return id
end

-- Adds the i-th event's fields (i as text) to ev[1 .. e]; returns the new e.  old: the
-- value before, or false.
local function event_fields(ev, e, i, code, name, value, old, targets)
  ev[e + 1], ev[e + 2], ev[e + 3], ev[e + 4] = "e" .. i, code == "c" and CREATED or UPDATED,
    "k" .. i, name
  ev[e + 5], ev[e + 6], e = "p" .. i, value, e + 6
  if string.byte(targets, 1) == 33 then  -- "!" (OLD_MARK): the target needs the old value
    targets = string.sub(targets, 2)
    if old then ev[e + 1], ev[e + 2], e = "q" .. i, old, e + 2 end
  end
  ev[e + 1], ev[e + 2] = "t" .. i, targets
  return e + 2
end

-- Nothing to append: with events on, the outbox's type is still checked (nil: refused).
local function no_entry(events)
  if not events then return "" end
  local found = redis.call("TYPE", outbox)["ok"]
  return (found == "stream" or found == "none") and "" or nil
end

-- The write of n fields (2 .. PREFETCH_MAX): the same steps over lists.  In the meta hash's
-- HMGET, field i's type is at 3i - 1 and its triggers at 3i, 3i + 1 (events) or at i + 1.
local function quick_many(A, o, obj, meta, n)
  local events, pos, names, fields = A[o + 5] == "1" and not switched, o + 7, {}, {"v"}
  for i = 1, n do
    local name = A[pos + 3 * i - 3]
    names[i] = name
    if events then
      fields[3 * i - 1], fields[3 * i], fields[3 * i + 1] = "y:" .. name, "t:c:" .. name,
        "t:u:" .. name
    else
      fields[i + 1] = "y:" .. name
    end
  end
  local m = redis.pcall("HMGET", meta, unpack(fields))
  if m.err or not plain_version(m[1]) then return nil end
  local version, old = tonumber(m[1]), redis.pcall("HMGET", obj, unpack(names))
  if old.err or version >= MAX_VERSION then return nil end

  local created, changed, matched = 0, 0, 0
  local args, settypes, s, cleartypes, c, ev, e = {}, {}, 0, {}, 0, {}, 0
  for i = 1, n do
    local at = pos + 3 * i - 3
    local name, value, vtype, was = names[i], A[at + 1], A[at + 2], old[i]
    local oldtype, code = m[events and 3 * i - 1 or i + 1], nil
    if not was then
      created, code = created + 1, "c"
    elseif was ~= value or (oldtype or "0") ~= vtype then
      code = "u"
    end
    args[2 * i - 1], args[2 * i] = name, value
    if vtype ~= "0" then
      settypes[s + 1], settypes[s + 2], s = "y:" .. name, vtype, s + 2
    elseif oldtype then
      cleartypes[c + 1], c = "y:" .. name, c + 1
    end
    local targets = code and events and m[code == "c" and 3 * i or 3 * i + 1]
    if code then changed = changed + 1 end
    if targets then
      matched = matched + 1
      e = event_fields(ev, e, tostring(matched), code, name, value, was, targets)
    end
  end
  local new_version = changed > 0 and version + 1 or version
  local vt = changed > 0 and string.format("%d", new_version) or m[1]
  local id
  if matched > 0 then
    id = quick_append(A, o, vt, tostring(matched), ev, e)
  else
    id = no_entry(events)
  end
  if not id then return nil end
  redis.call("HSET", obj, unpack(args))
  if c > 0 then redis.call("HDEL", meta, unpack(cleartypes)) end
  if changed > 0 then settypes[s + 1], settypes[s + 2], s = "v", vt, s + 2 end
  if s > 0 then redis.call("HSET", meta, unpack(settypes)) end
  return {0, new_version, id, matched, created}
end

-- The quick write's reply, or nil: then the general path below.
local function quick(A, o, obj, meta)
  local mode, n = A[o + 1], A[o + 6]
  if mode ~= "update" and mode ~= "upsert" then return nil end
  if n == "1" then return quick_one(A, o, obj, meta) end
  n = tonumber(n)
  if n < 2 or n > PREFETCH_MAX or A[o + 7 + 3 * n] ~= "0" then return nil end
  return quick_many(A, o, obj, meta, n)
end

if quick_on and not flagged and not tried and ARGV[1] ~= "batch" then
  local reply = quick(ARGV, 0, KEYS[1], KEYS[2])
  if reply then return reply end
  tried = true
end

--@library

-- What the EXISTS above found: the capture flag, the switch, or both.
if flagged then
  capturing = redis.call("EXISTS", capture) == 1
  local refused
  switched, refused = switched_off(KEYS[6], outbox)
  if refused then return refused end
  quick_on = quick_on and not capturing
end
if quick_on and not tried and ARGV[1] ~= "batch" then
  local reply = quick(ARGV, 0, KEYS[1], KEYS[2])
  if reply then return reply end
end

-- The general path: every mode, keyspace capture, and every refusal.
local SET_MODES = {create = true, update = true, upsert = true, replace = true, setnx = true}
local CREATING = {create = true, upsert = true, replace = true, setnx = true, incr = true,
                  incrfloat = true}

local function typekeys(list)
  local out = {}
  for i, name in ipairs(list) do out[i] = "y:" .. name end
  return out
end

-- The keys' types, in the order a refusal names them (the object, its meta, the outbox,
-- the shadow): nil when all are right.
local function check_types(obj, meta, shadow, events)
  return check_type(obj, "hash") or check_type(meta, "hash")
    or (events and check_type(outbox, "stream")) or (capturing and check_type(shadow, "hash"))
end

-- A refusal or an early status, reported after the check a write deferred (the outbox's
-- type, when `lazy`): a write is refused for the first thing wrong, in the order above.
local function refuse(lazy, reply)
  return (lazy and check_type(outbox, "stream")) or reply
end

-- One write of one object: A[o + 1] .. are its arguments, as ARGV of a single write.
local function write(A, o, obj, meta, shadow)
  local mode, oid, depth, traceparent = A[o + 1], A[o + 2], A[o + 3], A[o + 4]
  local events = A[o + 5] == "1" and not switched
  local n = tonumber(A[o + 6])
  local pos = o + 7
  local incrementing = mode == "incr" or mode == "incrfloat"

  local names, values, types = {}, {}, {}
  local per_item = (mode == "delete_fields") and 1 or 3
  for i = 1, n do
    names[i] = A[pos]
    if per_item == 3 then
      values[i], types[i] = A[pos + 1], A[pos + 2]
    end
    pos = pos + per_item
  end

  -- 1. Reads and checks.  The common case reads the object's fields and, in one HMGET of
  -- its meta hash, the version, the value types and the triggers of those fields; a read
  -- refused for a key's type falls back to naming it (check_types).  The outbox's type is
  -- left to the XADD when there is one (its first write), else checked before writing.
  local replacing = A[pos] ~= "0"
  local prefetch = SET_MODES[mode] and n > 0 and n <= PREFETCH_MAX and mode ~= "setnx"
  local fields = {"v"}
  if prefetch then
    for i = 1, n do fields[i + 1] = "y:" .. names[i] end
    if events and not replacing then
      for i = 1, n do
        fields[#fields + 1] = "t:c:" .. names[i]
        fields[#fields + 1] = "t:u:" .. names[i]
      end
    end
  end
  -- with capture on, every type is checked at once; otherwise the outbox's is deferred
  local lazy_outbox = events and not incrementing and not capturing
  local bad = capturing and check_types(obj, meta, shadow, events)
  if bad then return bad end
  local metas = redis.pcall("HMGET", meta, unpack(fields))
  local old = nil
  if prefetch and not metas.err then old = redis.pcall("HMGET", obj, unpack(names)) end
  if metas.err or (old and old.err) then
    return check_types(obj, meta, shadow, events) or redis.error_reply(metas.err or old.err)
  end
  bad = (not old and check_type(obj, "hash"))
    or (events and not lazy_outbox and not capturing and check_type(outbox, "stream"))
  if bad then return bad end

  local version, bad_version = read_version(meta, metas[1])
  if bad_version then
    -- delete works whatever the version: it removes obj and meta, its DELETEs carry version 0
    if mode ~= "delete" then return refuse(lazy_outbox, bad_version) end
    version = -1
  end

  local had_fields, exists = nil, metas[1] ~= false
  if old then
    for i = 1, n do
      if old[i] then had_fields = true end
    end
  end
  if not exists or (capturing and had_fields == nil) then
    had_fields = had_fields or redis.call("EXISTS", obj) == 1
    exists = exists or had_fields or redis.call("EXISTS", meta) == 1
  end
  local existed = exists and 1 or 0
  if mode == "create" and exists then
    return refuse(lazy_outbox, {1, 0, "", 0, 0, 0, "", 1})
  end
  if not exists and not CREATING[mode] then
    return refuse(lazy_outbox, {2, 0, "", 0, 0, 0, "", 0})
  end

  -- 2. The new trigger configuration, if any: written below, matched against from here on.
  local index, fresh = nil, {}
  if replacing then
    local serialized, m = A[pos + 1], tonumber(A[pos + 2])
    index = {}
    if serialized ~= "" then fresh = {"ev", serialized} end
    for j = 0, m - 1 do
      local field, targets = A[pos + 3 + 2 * j], A[pos + 4 + 2 * j]
      index[field] = targets
      fresh[#fresh + 1] = field
      fresh[#fresh + 1] = targets
    end
    if A[pos] == "2" then
      local current = redis.call("HGET", meta, "ev") or ""
      if current == serialized then
        return refuse(lazy_outbox, {0, version, "", 0, 0, 0, "", existed})
      end
      if current ~= A[pos + 3 + 2 * m] then
        return refuse(lazy_outbox, {3, version, "", 0, 0, 0, "", existed})
      end
    end
  end

  -- 3. The changes, read without writing anything.
  local changes = {}  -- {code, name, value or false}
  local created = 0
  local args, settypes, cleartypes = {}, {}, {}
  local known = nil  -- the triggers read with the meta hash: t:<c|u>:<field> -> targets or false

  if mode == "func" then
    local output = values[1]
    if string.len(types[1]) > 2 then output = false end
    changes[1] = {string.sub(types[1], 1, 2), names[1], output, false}
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

  if SET_MODES[mode] and n > 0 then
    local oldtypes, t = metas, 1  -- the type of field i is oldtypes[i + t]
    if prefetch then
      if #fields > n + 1 then
        known = {c = {}, u = {}}
        for i = 1, n do
          known.c[names[i]] = metas[n + 2 * i]
          known.u[names[i]] = metas[n + 2 * i + 1]
        end
      end
    else
      old = chunked("HMGET", obj, names)
      oldtypes, t = chunked("HMGET", meta, typekeys(names)), 0
    end
    for i = 1, n do
      local oldtype = oldtypes[i + t] or "0"
      if not old[i] then
        created = created + 1
        changes[#changes + 1] = {"c", names[i], values[i], false}
      elseif old[i] ~= values[i] or oldtype ~= types[i] then
        changes[#changes + 1] = {"u", names[i], values[i], old[i]}
      end
      args[#args + 1] = names[i]
      args[#args + 1] = values[i]
      if types[i] ~= "0" then
        settypes[#settypes + 1] = "y:" .. names[i]
        settypes[#settypes + 1] = types[i]
      elseif oldtypes[i + t] then
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
      changes[1] = {code, names[1], newvalue, incr_old}
      if not incr_old then created = 1 end
    end
  end
  if events then batches, matched = match_events(meta, changes, index, known, obj) end
  if #batches == 0 then
    bad = lazy_outbox and check_type(outbox, "stream")  -- no XADD to check it
    if bad then return bad end
    lazy_outbox = false
  elseif #batches > 1 then
    bad = refuse(lazy_outbox, nil) or check_room(outbox, #batches)
    if bad then return bad end
  end

  local bumps = mode == "create" or mode == "delete" or (#changes > 0 and mode ~= "func")
  if bumps and mode ~= "delete" then
    bad = check_bump(meta, version)
    if bad then return refuse(lazy_outbox, bad) end
  end
  local new_version = bumps and version + 1 or version
  -- The outbox's first entry wakes the workers at once (a hint: a refusal is ignored).
  local new_outbox = #batches > 0 and not outbox_exists and redis.call("EXISTS", outbox) == 0
  local id, refused = append_events(outbox, batches, oid, new_version, depth, traceparent)
  if refused then return refused end
  if new_outbox then redis.pcall("PUBLISH", "oprc:new-outbox", outbox) end
  outbox_exists = outbox_exists or #batches > 0

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
    if #removed > 0 then
      chunked("HDEL", obj, removed)
      chunked("HDEL", meta, typekeys(removed))
    end
    if bumps then
      settypes[#settypes + 1] = "v"
      settypes[#settypes + 1] = version_text(new_version)
    end
    chunked("HSET", meta, settypes)
  end
  return {0, new_version, id, matched, created, #removed, newvalue, existed}
end

if ARGV[1] ~= "batch" then return write(ARGV, 0, KEYS[1], KEYS[2], KEYS[4]) end

-- A batch: ARGV[2] = the number of writes, then per write: k (its object's keys are
-- KEYS[k], KEYS[k + 1] and its shadow KEYS[k + 2], or KEYS[4] when k is 1), the number of
-- its arguments, then those arguments, as ARGV of a single write.  Returns one reply per
-- write; a refused write's reply is {-1, error text} and the writes after it still run.
local out, at = {}, 3
for w = 1, tonumber(ARGV[2]) do
  local k, len = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  local reply = (quick_on and quick(ARGV, at + 1, KEYS[k], KEYS[k + 1]))
    or write(ARGV, at + 1, KEYS[k], KEYS[k + 1], KEYS[k == 1 and 4 or k + 2])
  if reply.err then reply = {-1, reply.err} end
  out[w] = reply
  at = at + 2 + len
end
return out
