"""What the drop-in wrappers share, without I/O: recognising object keys, turning redis-py
arguments into fields, turning write-script replies into what redis-py returns, and the
bookkeeping of intercepted commands inside a pipeline."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidIdError
from .keys import PARTITIONS_KEY, FieldKey, PartitionKeys, parse_field_name, parse_object_segment
from .ops import ObjectRef

__all__ = ["Intercepted", "converter", "expire_call", "hset_entries", "object_ref", "values_of"]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidIdError(f"field names must be str, bytes or int, got {type(value).__name__}")


def object_ref(name: Any) -> ObjectRef | None:
    """The object a key names when it is an object key of the layout, else ``None``.

    A key that is in the layout but names an invalid class or object id raises
    :class:`InvalidIdError` rather than passing through as a plain hash.
    """
    key = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
    if not isinstance(key, str) or not key.startswith("oprc:{"):
        return None
    segment = PartitionKeys.object_segment_of(key)
    if segment is None:
        return None
    partition = PartitionKeys.from_key(key)
    return ObjectRef.of(partition.cls_id, partition.partition_id, parse_object_segment(segment))


def values_of(names: Iterable[Any]) -> list[FieldKey]:
    """Hash field names (as redis-py takes them) as field keys: "42" is the field 42."""
    return [parse_field_name(_text(n)) for n in names]


def hset_entries(
    client: Any, key: Any, value: Any, mapping: dict[Any, Any] | None, items: list[Any] | None
) -> dict[FieldKey, bytes]:
    """The fields an HSET call sets, values encoded exactly as redis-py encodes them."""
    pairs: list[tuple[Any, Any]] = []
    if key is not None:
        pairs.append((key, value))
    if mapping:
        pairs.extend(mapping.items())
    if items:
        pairs.extend(zip(items[::2], items[1::2], strict=True))
    if not pairs:
        from redis.exceptions import DataError

        raise DataError("'hset' with no key value pairs")
    encoder = client.get_encoder()
    return {values_of([k])[0]: encoder.encode(v) for k, v in pairs}


def expire_call(
    ref: ObjectRef,
    command: str,
    when: Any = None,
    *,
    nx: bool = False,
    xx: bool = False,
    gt: bool = False,
    lt: bool = False,
) -> tuple[list[str], list[Any]]:
    """Keys and arguments of ``expire.lua`` for an EXPIRE-family command, with ``when``
    converted as redis-py converts it (timedelta, datetime or a number)."""
    args: list[Any] = [command]
    if command != "PERSIST":
        args.append(_expiry(command, when))
        args += [flag for flag, on in (("NX", nx), ("XX", xx), ("GT", gt), ("LT", lt)) if on]
    return [ref.obj, ref.meta, ref.keys.capture_flag], args


def _expiry(command: str, when: Any) -> int:
    millis = command.startswith("P")
    if isinstance(when, datetime.timedelta):
        return int(when.total_seconds() * 1000) if millis else int(when.total_seconds())
    if isinstance(when, datetime.datetime):
        return int(when.timestamp() * 1000) if millis else int(when.timestamp())
    return int(when)


def _created(reply: Any) -> int:
    return int(reply[4])


def _deleted(reply: Any) -> int:
    return 0 if int(reply[0]) == 2 else int(reply[5])


def _existed(reply: Any) -> int:
    # DEL counts keys: the object's hash existed when it had fields (an object with only
    # triggers has no hash in Redis, and its triggers are deleted all the same).
    return 1 if int(reply[0]) != 2 and int(reply[5]) > 0 else 0


def _value(reply: Any) -> Any:
    return reply[6]


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "upsert": _created,
    "setnx": _created,
    "delete_fields": _deleted,
    "delete": _existed,
    "incr": lambda reply: int(_value(reply)),
    "incrfloat": lambda reply: float(_value(reply)),
}


def converter(mode: str) -> Callable[[Any], Any]:
    """From a write-script reply to what redis-py returns for the intercepted command."""
    return _CONVERTERS[mode]


@dataclass
class Intercepted:
    """The commands queued in one pipeline and how to read each reply."""

    store: Any
    pipe: Any
    readers: list[Callable[[Any], Any] | None] = field(default_factory=list)  # None: hidden
    merges: list[int] = field(default_factory=list)  # replies summed into the previous one

    def plain(self) -> None:
        self.readers.append(lambda reply: reply)

    def write(self, owner: Any, ref: ObjectRef, mode: str, **kw: Any) -> Any:
        call = self.store.build(ref, mode, **kw)
        script = self.store._write
        self.pipe.scripts.add(script)
        self.pipe.evalsha(script.sha, len(call.keys), *call.keys, *call.args)
        self.readers.append(converter(mode))
        if ref.keys.member not in self.store.known_partitions:
            self.pipe.sadd(PARTITIONS_KEY, ref.keys.member)
            self.readers.append(None)
            self.store.known_partitions.add(ref.keys.member)
        return owner

    def expire(self, owner: Any, script: Any, keys: list[str], args: list[Any]) -> Any:
        self.pipe.scripts.add(script)
        self.pipe.evalsha(script.sha, len(keys), *keys, *args)
        self.readers.append(bool)
        return owner

    def delete(self, owner: Any, names: tuple[Any, ...], *, unlink: bool) -> Any:
        if not names:
            from redis.exceptions import DataError

            raise DataError("DEL needs at least one key")
        first = len(self.readers)
        others = [n for n in names if object_ref(n) is None]
        if others:
            (self.pipe.unlink if unlink else self.pipe.delete)(*others)
            self.plain()
        for name in names:
            ref = object_ref(name)
            if ref is not None:
                self.write(owner, ref, "delete")
        # one DEL command: its replies are summed into one result
        visible = [i for i in range(first, len(self.readers)) if self.readers[i] is not None]
        self.merges.extend(visible[1:])
        if not visible:
            self.plain()
        return owner

    def results(self, replies: list[Any]) -> list[Any]:
        out: list[Any] = []
        for i, (reader, reply) in enumerate(zip(self.readers, replies, strict=True)):
            if reader is None:
                continue
            value = reply if isinstance(reply, Exception) else reader(reply)
            if i in self.merges:
                out[-1] += value
            else:
                out.append(value)
        self.clear()
        return out

    def clear(self) -> None:
        self.readers.clear()
        self.merges.clear()
