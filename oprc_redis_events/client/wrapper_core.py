"""What the drop-in wrappers share, without I/O: which commands go through the write path,
which are refused, and how to turn write-script replies into what redis-py returns.

Every command a wrapper sends passes :func:`plan_command` with its Redis arguments:

- a command that only reads, or names no key of an object, is sent as it is (``None``);
- HSET, HMSET, HSETNX, HDEL, HINCRBY, HINCRBYFLOAT, DEL, UNLINK and the EXPIRE family on an
  object key become a :class:`Plan`: calls of ``write.lua`` / ``expire.lua`` (and of the
  plain command for the other keys of a DEL), and how to combine their replies;
- any other command that may write a key of an object (``oprc:{cls:pid}:obj|meta|shadow:
  <oid>``) in any key position raises :class:`UnsupportedCommandError`, as does a command
  the table does not know when one of its arguments is such a key.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import DataError

from ..errors import InvalidIdError, InvalidValueError
from ..protocol.keys import (
    FieldKey,
    PartitionKeys,
    field_name,
    parse_field_name,
    parse_object_key,
)
from .command_keys import argv_of, command_of, key_indexes
from .core import ObjectRef
from .wrapper_refusals import refusal, unknown_refusal

__all__ = ["ROUTED", "Plan", "Step", "field_key", "object_ref", "plan_command"]


def object_ref(name: Any) -> ObjectRef | None:
    """The object an object key names, ``None`` for any other key (a malformed key of the
    object layout raises :class:`InvalidIdError`)."""
    found = parse_object_key(name)
    if found is None or found[0] != "obj":
        return None
    return ObjectRef(found[1], found[2])


def field_key(value: Any) -> FieldKey:
    """A hash field name as redis-py takes it, as a field key: ``"42"`` is the field 42."""
    if type(value) in (str, bytes):  # names come again and again: parsed once
        return _field_key(value)
    return _field_key.__wrapped__(value)


@functools.lru_cache(maxsize=4096)
def _field_key(value: Any) -> FieldKey:
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidIdError(f"field name {bytes(value)!r} is not valid UTF-8") from None
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float):
        text = repr(value)
    else:
        raise InvalidIdError(
            f"field names must be str, bytes, int or float, got {type(value).__name__} {value!r}"
        )
    key = parse_field_name(text)
    field_name(key)  # validates
    return key


@dataclass(slots=True)  # not frozen: built per command, where frozen init costs
class Step:
    """One call made for a routed command: ``write.lua`` on ``ref`` (``mode``, ``kw``),
    ``expire.lua`` (``keys``, ``args``) or a plain command (``args``)."""

    kind: str
    ref: ObjectRef | None = None
    mode: str = ""
    kw: dict[str, Any] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    args: tuple[Any, ...] = ()

    @property
    def target(self) -> ObjectRef:
        if self.ref is None:
            raise TypeError(f"a {self.kind} step names no object")
        return self.ref

    def read(self, reply: Any) -> Any:
        """The reply as Redis would have given it for the routed command."""
        if self.kind == "write":
            return _READERS[self.mode](reply)
        return int(reply) if self.kind == "expire" else reply


_READERS: dict[str, Callable[[Any], Any]] = {
    "upsert": lambda reply: int(reply[4]),
    "setnx": lambda reply: int(reply[4]),
    "delete_fields": lambda reply: 0 if int(reply[0]) == 2 else int(reply[5]),
    # DEL counts keys: the object's hash existed when it had fields
    "delete": lambda reply: 1 if int(reply[0]) != 2 and int(reply[5]) > 0 else 0,
    "incr": lambda reply: int(reply[6]),
    "incrfloat": lambda reply: reply[6],
}


@dataclass(slots=True)  # not frozen: built per command, where frozen init costs
class Plan:
    """The calls that stand for one command on object keys, and how to answer it."""

    name: str
    steps: tuple[Step, ...]
    total: bool = False  # DEL, UNLINK: the replies add up
    ok: bool = False  # HMSET answers OK

    def finish(self, replies: Sequence[Any], callbacks: Mapping[Any, Any]) -> Any:
        """What redis-py returns: the raw reply through the client's response callback."""
        for reply in replies:
            if isinstance(reply, Exception):
                return reply
        values = [step.read(reply) for step, reply in zip(self.steps, replies, strict=True)]
        raw = b"OK" if self.ok else sum(values) if self.total else values[0]
        callback = callbacks.get(self.name)
        return raw if callback is None else callback(raw)


def plan_command(args: Sequence[Any], client: Any) -> Plan | None:
    """``None`` when ``args`` may be sent as they are, else the :class:`Plan` for them;
    raises :class:`UnsupportedCommandError` for a write the wrapper cannot make with events."""
    command = command_of(args)
    if command.writes is False:
        return None
    argv = argv_of(args)
    router = _ROUTERS.get(command.name)
    if router is not None:
        return router(argv, client)
    if command.name in SCRIPTS:
        _refuse_script(command.name, argv)
    if command.writes:
        for i in key_indexes(command.specs, argv):
            found = parse_object_key(argv[i])
            if found is not None:
                raise refusal(command.name, argv[i], found[0])
    else:
        for value in argv[1:]:
            _refuse_unknown(command.name, value)
    return None


#: commands that run a script which may write any key it is given, as a key or an argument
#: (their _RO variants may not write, by contract, and are sent)
SCRIPTS = frozenset({"eval", "evalsha", "fcall"})


def _refuse_script(name: str, argv: Sequence[Any]) -> None:
    """Refuse a script given a key of an object anywhere (KEYS or ARGV): it could write it
    with ``redis.call`` without its events."""
    for value in argv[2:]:
        try:
            found = parse_object_key(value)
        except InvalidIdError:
            continue  # not a key of the layout: no object to protect
        if found is not None:
            raise refusal(name, value, found[0])


def _refuse_unknown(name: str, value: Any) -> None:
    try:
        found = parse_object_key(value)
    except InvalidIdError:
        return  # not a key we can tell apart from any other argument
    if found is not None:
        raise unknown_refusal(name, value)


def _target(name: str, key: Any) -> ObjectRef | None:
    # the same keys come again and again: parsed once
    found = _parsed(key) if isinstance(key, (str, bytes)) else parse_object_key(key)
    if found is None:
        return None
    if found[0] != "obj":
        raise refusal(name.lower(), key, found[0])
    return ObjectRef.of_parsed(found[1], found[2])


@functools.lru_cache(maxsize=4096)
def _parsed(key: str | bytes) -> tuple[str, PartitionKeys, str] | None:
    return parse_object_key(key)


def _values(client: Any, name: str, key: Any, pairs: Sequence[Any]) -> dict[FieldKey, Any]:
    if not pairs or len(pairs) % 2:
        raise InvalidValueError(
            f"{name.upper()} on object key {key!r} needs field/value pairs, "
            f"got {len(pairs)} argument(s)"
        )
    items = zip(pairs[::2], pairs[1::2], strict=True)
    encoder = _encoder(client)
    return {field_key(f): _encode(client, f, v, encoder) for f, v in items}


_ENCODERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _encoder(client: Any) -> Any:
    """``client.get_encoder()``, kept per connection pool (redis-py builds a new one on every
    call, from the pool's settings)."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return client.get_encoder()
    try:
        return _ENCODERS[pool]
    except KeyError:
        encoder = _ENCODERS[pool] = client.get_encoder()
        return encoder
    except TypeError:  # not weakly referable
        return client.get_encoder()


def _encode(client: Any, name: Any, value: Any, encoder: Any = None) -> bytes:
    """``value`` as redis-py would send it (by ``client``'s encoder, or ``encoder``)."""
    if type(value) is bytes:  # what redis-py sends as it is
        return value
    try:
        return bytes((encoder or client.get_encoder()).encode(value))
    except DataError as err:
        raise InvalidValueError(f"value of field {name!r}: {err}") from None
    except UnicodeEncodeError:
        raise InvalidValueError(
            f"value of field {name!r} is not valid UTF-8 text (it holds a lone surrogate)"
        ) from None


def _arity(argv: Sequence[Any], ref: ObjectRef, low: int, high: int | None = None) -> None:
    if len(argv) < low or (high is not None and len(argv) > high):
        raise InvalidValueError(
            f"{argv_name(argv)} on object key {ref.obj!r}: wrong number of arguments"
        )


def _head(argv: Sequence[Any]) -> str:
    head = argv[0]
    return head.decode("utf-8", "replace") if isinstance(head, bytes) else str(head)


def argv_name(argv: Sequence[Any]) -> str:
    """The command name of an argument vector, upper case."""
    return _head(argv).upper()


def _hset(argv: Sequence[Any], client: Any) -> Plan | None:
    name = argv_name(argv)
    ref = _target(name, argv[1]) if len(argv) > 1 else None
    if ref is None:
        return None
    if name == "HSETNX":
        _arity(argv, ref, 4, 4)
    entries = _values(client, name, argv[1], argv[2:])
    mode = "setnx" if name == "HSETNX" else "upsert"
    return Plan(_head(argv), (Step("write", ref, mode, {"entries": entries}),), ok=name == "HMSET")


def _hdel(argv: Sequence[Any], client: Any) -> Plan | None:
    ref = _target("HDEL", argv[1]) if len(argv) > 1 else None
    if ref is None:
        return None
    _arity(argv, ref, 3)
    names = [field_key(n) for n in argv[2:]]
    return Plan(_head(argv), (Step("write", ref, "delete_fields", {"delete_keys": names}),))


def _hincr(argv: Sequence[Any], client: Any) -> Plan | None:
    name = argv_name(argv)
    ref = _target(name, argv[1]) if len(argv) > 1 else None
    if ref is None:
        return None
    _arity(argv, ref, 4, 4)
    key = field_key(argv[2])
    amount = _encode(client, key, argv[3]).decode("utf-8", "replace")
    mode = "incr" if name == "HINCRBY" else "incrfloat"
    return Plan(_head(argv), (Step("write", ref, mode, {"entries": {key: amount}}),))


def _delete(argv: Sequence[Any], client: Any) -> Plan | None:
    name = argv_name(argv)
    targets = [(key, _target(name, key)) for key in argv[1:]]
    steps = [Step("write", ref, "delete") for _, ref in targets if ref is not None]
    if not steps:
        return None
    others = tuple(key for key, ref in targets if ref is None)
    if others:
        steps.insert(0, Step("plain", args=(argv[0], *others)))
    return Plan(_head(argv), tuple(steps), total=True)


def _expire(argv: Sequence[Any], client: Any) -> Plan | None:
    name = argv_name(argv)
    ref = _target(name, argv[1]) if len(argv) > 1 else None
    if ref is None:
        return None
    keys = [ref.obj, ref.meta, ref.keys.capture_flag]
    return Plan(_head(argv), (Step("expire", keys=keys, args=(name, *argv[2:])),))


_ROUTERS: dict[str, Callable[[Sequence[Any], Any], Plan | None]] = {
    "hset": _hset,
    "hmset": _hset,
    "hsetnx": _hset,
    "hdel": _hdel,
    "hincrby": _hincr,
    "hincrbyfloat": _hincr,
    "del": _delete,
    "unlink": _delete,
    **dict.fromkeys(("expire", "pexpire", "expireat", "pexpireat", "persist"), _expire),
}

#: the Redis commands that go through the write path on object keys
ROUTED = frozenset(_ROUTERS)
