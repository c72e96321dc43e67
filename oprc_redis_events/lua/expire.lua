-- expire.lua: the EXPIRE family on an object key, atomically with its triggers.
--
-- KEYS[1]  object hash     oprc:{cls:pid}:obj:<oid>
-- KEYS[2]  meta hash       oprc:{cls:pid}:meta:<oid>
-- KEYS[3]  capture flag    oprc:{cls:pid}:capture
-- ARGV[1]  EXPIRE | PEXPIRE | EXPIREAT | PEXPIREAT | PERSIST;  ARGV[2..] its arguments
--
-- Returns the command's reply for the object key.  When it took effect and no keyspace
-- capture serves the partition, the triggers get the same expiry, so they end with the
-- object.  With capture on they stay: capture reports the object's DELETE events when it
-- expires, which needs them, and then removes them.

local reply = redis.call(ARGV[1], KEYS[1], unpack(ARGV, 2))
if reply == 1 and redis.call("EXISTS", KEYS[3]) == 0 and redis.call("EXISTS", KEYS[2]) == 1 then
  redis.call(ARGV[1], KEYS[2], unpack(ARGV, 2))
end
return reply
