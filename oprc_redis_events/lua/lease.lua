-- lease.lua: renew or release a partition lease only when we still hold it.
--
-- KEYS[1]  lease key   oprc:{cls:pid}:lease:<group>   (string: the holder's consumer name)
-- ARGV[1]  "renew" | "release"
-- ARGV[2]  consumer name of the caller
-- ARGV[3]  lease time in ms (renew)
--
-- Returns 1 when the caller held the lease (and it was renewed or released), else 0.
-- Taking a free lease is a plain SET NX PX and needs no script.

if redis.call("GET", KEYS[1]) ~= ARGV[2] then return 0 end
if ARGV[1] == "release" then
  redis.call("DEL", KEYS[1])
else
  redis.call("PEXPIRE", KEYS[1], ARGV[3])
end
return 1
