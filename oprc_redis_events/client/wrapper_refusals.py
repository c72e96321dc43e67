"""The errors ``EventedRedis`` raises for commands it will not send, with what to do instead."""

from __future__ import annotations

from typing import Any, Final

from ..errors import UnsupportedCommandError

__all__ = ["refusal", "unknown_refusal"]

_COPY: Final = "read it with ObjectStore.get and write the copy with ObjectStore.create"
_FIELD_TTL: Final = "fields cannot expire one by one; expire the whole object with expire"
_SCRIPT: Final = (
    "read objects with EVAL_RO, EVALSHA_RO or FCALL_RO, and write them through EventedRedis"
)

#: what to use instead, by command
INSTEAD: Final[dict[str, str]] = {
    "rename": "create it under the new id with ObjectStore.create, then delete the old one",
    "copy": _COPY,
    "move": f"objects stay in their database; {_COPY}",
    "restore": "write its fields with hset (or ObjectStore.replace)",
    "hsetex": f"use hset; {_FIELD_TTL}",
    "hgetex": f"read with hget or hmget; {_FIELD_TTL}",
    "hgetdel": "read the fields with hmget, then delete them with hdel",
    **dict.fromkeys(("hexpire", "hpexpire", "hexpireat", "hpexpireat", "hpersist"), _FIELD_TTL),
    **dict.fromkeys(("eval", "evalsha", "fcall"), _SCRIPT),
}
INSTEAD["renamenx"] = INSTEAD["rename"]
INSTEAD["migrate"] = INSTEAD["move"]
DEFAULT: Final = (
    "change objects with hset, hdel, hincrby, delete or expire through EventedRedis, "
    "or with ObjectStore"
)

#: why a key of each kind may not be written behind the library's back
_WHY: Final = {
    "obj": "it would change the object without its events and triggers",
    "meta": "it holds the object's version and triggers, kept by the write path",
    "shadow": "it is keyspace capture's record of what it last reported",
}
_ELSE: Final = {
    "meta": "change triggers with ObjectStore.set_triggers or `oprc-redis-events triggers`",
    "shadow": "only the worker writes it",
}


def _display(name: str) -> str:
    return name.replace("|", " ").upper()


def refusal(name: str, key: Any, kind: str) -> UnsupportedCommandError:
    """``name`` (a command, lower case) may write ``key``, a key of an object of ``kind``."""
    instead = _ELSE.get(kind) or INSTEAD.get(name, DEFAULT)
    if name.startswith("json."):
        instead = "objects are hashes: write their fields with hset"
    where = "object key" if kind == "obj" else f"object {kind} key"
    return UnsupportedCommandError(
        f"{_display(name)} on {where} {key!r} is not supported by EventedRedis: "
        f"{_WHY[kind]}; {instead}"
    )


def unknown_refusal(name: str, key: Any) -> UnsupportedCommandError:
    """``name`` is not in the command table and one of its arguments is a key of an object."""
    return UnsupportedCommandError(
        f"{_display(name)} is not a command EventedRedis knows, and it names the object's key "
        f"{key!r}: it might change the object without its events; if it only reads, send it "
        "with the wrapped client (EventedRedis.client)"
    )
