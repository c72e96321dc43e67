"""Redis ACL rules of each role (writer, worker, capture, admin), as pure data.

Each role is the rules of one ``ACL SETUSER`` line after the user's name and password
(Redis 7: ``%R~`` / ``%W~`` key permissions and selectors)::

    ACL SETUSER <name> on >pw  <root rules> (<selector rules>)

Redis checks ``EVALSHA`` as if it read and wrote every key it is given, then checks each
command a script runs, on the keys it touches, like a command sent by the client.  So the
root rules allow only the script commands (plus the connection's own) on the keys the
scripts are given, and a selector holds what the role may really do: its commands, with
read or write permission per key of the layout (:mod:`.keys`).  A command is allowed when
the root rules or the selector allow it and all its keys, so the writer, whose script
appends to the outbox, cannot run ``XRANGE``, ``XREADGROUP``, ``XACK`` or ``XTRIM`` on it,
in a script or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .keys import NEW_OUTBOX_CHANNEL, PARTITIONS_KEY, PREFIX, PartitionKeys, workers_key
from .switch import SWITCH_KEY

__all__ = ["ROLES", "KeyPatterns", "checks", "rules", "sample_key"]

_ANY: Final = PartitionKeys("*", 0)  # its tag is replaced by {*}: every partition


def _every(key: str) -> str:
    return key.replace(_ANY.tag, "{*}")


class KeyPatterns:
    """Glob patterns (as ``ACL`` and ``SCAN MATCH`` take them) of the layout's keys."""

    obj: Final = _every(_ANY.obj("*"))
    meta: Final = _every(_ANY.meta("*"))
    shadow: Final = _every(_ANY.shadow("*"))
    outbox: Final = _every(_ANY.outbox)
    dead_letters: Final = _every(_ANY.dead_letters)
    lease: Final = _every(_ANY.lease("*"))
    capture_flag: Final = _every(_ANY.capture_flag)
    switch: Final = f"{SWITCH_KEY}*"  # one key, or one per slot on a cluster
    partitions: Final = PARTITIONS_KEY
    workers: Final = workers_key("*")
    every: Final = f"{PREFIX}:*"


K = KeyPatterns
#: the keys write.lua is given (KEYS[1..6]); expire.lua takes three of them
WRITE_SCRIPT_KEYS: Final = (K.obj, K.meta, K.outbox, K.shadow, K.capture_flag, K.switch)
#: what every client sends: the handshake, transactions, and the scripts (redis-py's
#: Script runs EVALSHA and SCRIPT LOAD after NOSCRIPT; a pipeline asks SCRIPT EXISTS)
BASE: Final = (
    "resetkeys resetchannels clearselectors -@all",
    "+hello +ping +select +client|setname +multi +exec +discard",
    # the start-up check of its own rights (ACL DRYRUN <itself> ...): reveals rights, no data
    "+acl|whoami +acl|dryrun",
    "+evalsha +script|load +script|exists",
)
#: the commands write.lua and expire.lua run (with lib/events.lua)
WRITE_SCRIPT: Final = (
    "+type +exists +hget +hmget +hkeys +hexists +hset +hdel +del +hincrby +hincrbyfloat",
    "+xadd +expire +pexpire +expireat +pexpireat +persist +publish",
)
#: the channel write.lua announces a new outbox on (the worker listens to it)
NEW_OUTBOX: Final = f"&{NEW_OUTBOX_CHANNEL}"
#: the worker's own commands on the outboxes, dead letters, leases and its group's set
WORKER: Final = (
    # new outboxes announced (SUBSCRIBE), and the loop's blocking read woken (CLIENT UNBLOCK)
    "+subscribe +unsubscribe +client|id +client|unblock",
    "+xreadgroup +xack +xautoclaim +xclaim +xpending +xgroup|create +xgroup|createconsumer",
    "+xinfo|groups +xinfo|stream +xinfo|consumers +xtrim +xadd +xdel +xlen +xrange",
    "+xrevrange +scan +set +get +del +pexpire +zadd +zcount +zrem +zremrangebyscore",
    "+zrangebyscore +smembers +sadd +type +exists +time",
    # dead-lettering and dlq replay check the dead-letter stream's type under WATCH
    "+watch +unwatch",
    # the write script, recording function events (FUNC_COMPLETE / FUNC_ERROR), which
    # announces an outbox it starts (PUBLISH)
    "+hget +hmget +hkeys +hexists +hset +hdel +publish",
)
#: what keyspace capture adds: capture.lua, its flag, the notifications, CONFIG GET
CAPTURE: Final = ("+hgetall +psubscribe +punsubscribe +config|get",)


def _keys(*grants: tuple[str, str]) -> str:
    """``%R~`` / ``%W~`` / ``~`` (both) rules for (permission, pattern) pairs."""
    return " ".join(f"{'' if p == 'RW' else '%' + p}~{pattern}" for p, pattern in grants)


def _channel(db: int) -> str:
    # a PSUBSCRIBE pattern must equal an ACL channel pattern: the database is in it
    return f"&__keyspace@{db}__:{K.obj}"


def _writer(db: int) -> str:
    own = _keys(
        ("RW", K.obj), ("RW", K.meta), ("RW", K.shadow), ("R", K.capture_flag),
        ("W", K.outbox), ("RW", K.partitions), ("R", K.switch),
    )  # fmt: skip
    commands = " ".join((*WRITE_SCRIPT, "+hgetall +sadd +smembers"))
    return f"({commands} {own} {NEW_OUTBOX})"


def _worker(db: int) -> str:
    own = _keys(
        ("R", K.obj), ("R", K.meta), ("RW", K.shadow), ("R", K.capture_flag),
        ("RW", K.outbox), ("RW", K.dead_letters), ("RW", K.lease),
        ("RW", K.workers), ("RW", K.partitions), ("R", K.switch),
    )  # fmt: skip
    return f"({' '.join(WORKER)} {own} {NEW_OUTBOX})"


def _capture(db: int) -> str:
    own = _keys(
        ("R", K.obj), ("RW", K.meta), ("RW", K.shadow), ("RW", K.capture_flag),
        ("RW", K.outbox), ("RW", K.dead_letters), ("RW", K.lease),
        ("RW", K.workers), ("RW", K.partitions), ("R", K.switch),
    )  # fmt: skip
    return f"({' '.join((*WORKER, *CAPTURE))} {own} {_channel(db)} {NEW_OUTBOX})"


def _admin(db: int) -> str:
    return f"(+@all -@dangerous +config|get +config|set ~{K.every} {_channel(db)} {NEW_OUTBOX})"


#: role -> (what it is for, the keys its root rules give the scripts, its selector)
ROLES: Final = {
    "writer": ("the store and the evented client", WRITE_SCRIPT_KEYS, _writer),
    "worker": ("the worker without capture", (*WRITE_SCRIPT_KEYS, K.lease), _worker),
    "capture": ("the worker with --capture keyspace", (*WRITE_SCRIPT_KEYS, K.lease), _capture),
    "admin": ("the operator's commands (dlq, trim, groups, put, ...)", (K.every,), _admin),
}


def rules(roles: str | Sequence[str], db: int = 0) -> str:
    """The ``ACL SETUSER`` rules of a role (a key of :data:`ROLES`) on database ``db``; of
    several roles, their union (one selector each: a command one of them allows is allowed)."""
    names = list(dict.fromkeys([roles] if isinstance(roles, str) else roles))
    script_keys = dict.fromkeys(k for name in names for k in ROLES[name][1])
    keys = " ".join(f"~{k}" for k in script_keys)
    return " ".join((*BASE, keys, *(ROLES[name][2](db) for name in names)))


#: a command a role runs, as ``ACL DRYRUN`` takes it; arguments that are key patterns of
#: :class:`KeyPatterns` stand for any key they match (see :func:`sample_key`)
Check = tuple[str, ...]
_SHA = "0" * 40
_WRITER_CHECKS: Final[tuple[Check, ...]] = (
    ("EVALSHA", _SHA, str(len(WRITE_SCRIPT_KEYS)), *WRITE_SCRIPT_KEYS),
    ("SCRIPT", "LOAD", "return 1"),
    ("HGET", K.meta, "v"),
    ("HSET", K.meta, "v", "1"),
    ("HSET", K.obj, "f", "v"),
    ("HDEL", K.obj, "f"),
    ("DEL", K.obj),
    ("HGETALL", K.obj),
    ("EXISTS", K.capture_flag),
    ("HMGET", K.switch, "*"),
    ("XADD", K.outbox, "*", "n", "1"),
    ("SADD", K.partitions, "c:0"),
)
_WORKER_CHECKS: Final[tuple[Check, ...]] = (
    ("EVALSHA", _SHA, str(len(WRITE_SCRIPT_KEYS)), *WRITE_SCRIPT_KEYS),
    ("EVALSHA", _SHA, "1", K.lease),
    ("SCRIPT", "LOAD", "return 1"),
    ("XREADGROUP", "GROUP", "g", "c", "STREAMS", K.outbox, ">"),
    ("XACK", K.outbox, "g", "0-1"),
    ("XAUTOCLAIM", K.outbox, "g", "c", "0", "0-0"),
    ("XPENDING", K.outbox, "g"),
    ("XGROUP", "CREATE", K.outbox, "g", "0"),
    ("XINFO", "GROUPS", K.outbox),
    ("XTRIM", K.outbox, "MINID", "0"),
    ("XADD", K.outbox, "*", "n", "1"),
    ("XADD", K.dead_letters, "*", "n", "1"),
    ("XRANGE", K.dead_letters, "-", "+"),
    ("WATCH", K.dead_letters),
    ("XDEL", K.dead_letters, "0-1"),
    ("SET", K.lease, "c"),
    ("GET", K.lease),
    ("ZADD", K.workers, "1", "c"),
    ("SMEMBERS", K.partitions),
    ("SCAN", "0"),
    ("HGET", K.meta, "ev"),
    ("HSET", K.shadow, "f", "v"),
)
_CAPTURE_CHECKS: Final[tuple[Check, ...]] = (
    ("HSET", K.meta, "v", "1"),
    ("HDEL", K.meta, "t:u:f"),
    ("SET", K.capture_flag, "1"),
    ("HGETALL", K.obj),
    ("CONFIG", "GET", "notify-keyspace-events"),
)


def checks(role: str, db: int = 0) -> tuple[Check, ...]:
    """What ``role`` (writer, worker or capture) checks it may run at start-up."""
    if role == "writer":
        return _WRITER_CHECKS
    if role == "worker":
        return _WORKER_CHECKS
    if role == "capture":
        return (*_WORKER_CHECKS, *_CAPTURE_CHECKS, ("PSUBSCRIBE", _channel(db)[1:]))
    raise ValueError(f"no start-up checks for role {role!r}")


def sample_key(arg: str) -> str:
    """A key that the pattern ``arg`` matches (``oprc:{x}:obj:x``); other arguments as is."""
    if arg.startswith(f"{PREFIX}:") and "*" in arg:
        return arg.replace("*", "x")
    return arg
