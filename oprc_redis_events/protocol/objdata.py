"""The ODGM data API on Zenoh, without I/O: keys, ``ObjData`` <-> store, the write guard.

What real OPRC clients (the platform's SDK, through ``oprc-py``'s ``ObjectProxy``) send,
and what ODGM's shard network answers (WIRE.md, "What real OPRC clients do"):

=====================================  ============================  ==========================
key                                    request                       reply
=====================================  ============================  ==========================
``oprc/{cls}/{pid}/objects/{oid}``     GET                           the ``ObjData`` (metadata
                                                                     filled); empty: absent
``oprc/{cls}/{pid}/objects/{oid}/set`` GET carrying an ``ObjData``   empty: done
``oprc/{cls}/{pid}/objects/{oid}``     DELETE sample                 none (object deleted)
``oprc/{cls}/{pid}/objects/{oid}``     PUT sample of an ``ObjData``  none (as a set)
=====================================  ============================  ==========================

A set is a full replace: ``entries`` (numeric field keys) and ``entries_str`` (string
keys) become the object's whole content, and its ``event`` (``func_trigger``,
``data_trigger``, ``data_trigger_str``) its whole trigger configuration (none when
absent).  The key decides which object is written; the payload's ``metadata`` is not
read (ODGM does the same).  A request that cannot be served gets an error reply
(Zenoh ``reply_err``) whose payload is UTF-8 text naming the problem, as ODGM's
(``invalid object id``, ``payload is required``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from ..errors import InvalidIdError, InvalidValueError, OprcEventsError
from ..pb.oprc_data_pb2 import ObjData, ObjectEvent, ValData
from .keys import FieldKey, ObjectId, object_segment, parse_object_segment, validate_id
from .zenoh_keys import OBJECTS, PREFIX

__all__ = [
    "DEFAULT_MAX_OBJECT_BYTES",
    "DEFAULT_MAX_WRITES_PER_S",
    "ObjectAddress",
    "RateLimitedError",
    "WriteRateGuard",
    "decode_obj_data",
    "entries_of",
    "event_of",
    "parse_object_key",
    "served_expressions",
]

SET = "set"
#: a set (or PUT) payload larger than this is refused whole
DEFAULT_MAX_OBJECT_BYTES = 4 * 1024 * 1024
#: writes through the data API per object per second before the guard refuses them
DEFAULT_MAX_WRITES_PER_S = 100


def served_expressions(cls_id: str, partition_id: int | None = None) -> tuple[str, str]:
    """(object key expression, set key expression) for a class: every partition
    (``*``) unless ``partition_id`` is given, every object."""
    pid = "*" if partition_id is None else str(partition_id)
    head = f"{PREFIX}/{validate_id('cls_id', cls_id)}/{pid}/{OBJECTS}/*"
    return head, f"{head}/{SET}"


@dataclass(frozen=True, slots=True)
class ObjectAddress:
    """The object a data-API key names, and whether it is the ``/set`` key."""

    cls_id: str
    partition_id: int
    object_id: ObjectId
    is_set: bool = False

    def describe(self) -> str:
        return f"{self.cls_id}/{self.partition_id}/{self.object_id}"


def parse_object_key(key: str) -> ObjectAddress:
    """The object of ``oprc/{cls}/{pid}/objects/{oid}[/set]``; :class:`InvalidIdError`
    naming what is wrong otherwise (a partition that is not a u32, an object id the store
    refuses, such as ``007``)."""
    chunks = key.split("/")
    is_set = len(chunks) == 6 and chunks[5] == SET
    if not (len(chunks) == 5 or is_set) or chunks[0] != PREFIX or chunks[3] != OBJECTS:
        raise InvalidIdError(f"{key!r} is not an object key (oprc/CLS/PID/objects/OID[/set])")
    pid = chunks[2]
    if not pid.isdecimal() or pid != str(int(pid)) or int(pid) > 2**32 - 1:
        raise InvalidIdError(f"invalid partition id {pid!r} in {key!r}: a u32 (0..4294967295)")
    try:
        oid = parse_object_segment(chunks[4])
        object_segment(oid)
    except InvalidIdError as err:
        raise InvalidIdError(f"invalid object id in {key!r}: {err}") from None
    return ObjectAddress(chunks[1], int(pid), oid, is_set)


def decode_obj_data(body: bytes | None, max_bytes: int = DEFAULT_MAX_OBJECT_BYTES) -> ObjData:
    """The ``ObjData`` a set carries; :class:`InvalidValueError` naming the problem when it
    is missing, too large or not an ``ObjData``."""
    if body is None:
        raise InvalidValueError("payload is required: a set carries an ObjData (protobuf)")
    if len(body) > max_bytes:
        raise InvalidValueError(
            f"object too large: the ObjData is {len(body)} bytes, more than the "
            f"{max_bytes} bytes this server takes"
        )
    data = ObjData()
    try:
        data.ParseFromString(body)
    except DecodeError as err:
        raise InvalidValueError(f"payload is not an ObjData (protobuf): {err}") from None
    return data


def entries_of(data: ObjData) -> dict[FieldKey, ValData]:
    """The fields of an ``ObjData``: ``entries`` (u32 keys) and ``entries_str`` (strings)."""
    out: dict[FieldKey, ValData] = {key: value for key, value in data.entries.items()}
    for name, value in data.entries_str.items():
        out[name] = value
    return out


def event_of(data: ObjData) -> ObjectEvent | None:
    """The trigger configuration a set carries (``None``: the object gets none)."""
    return data.event if data.HasField("event") else None


class RateLimitedError(OprcEventsError):
    """A write through the data API refused by the :class:`WriteRateGuard`."""


class WriteRateGuard:
    """At most ``limit`` writes per key in each one-second window (``0``: no limit).

    The data API carries no trigger depth, so a loop through functions that write their
    object through it is not stopped by ``max_trigger_depth``; this guard refuses the
    writes past the limit, which ends a fast loop (its next event never happens)."""

    def __init__(
        self, limit: int, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000
    ) -> None:
        if limit < 0:
            raise InvalidValueError(f"max writes per object per second must be >= 0, got {limit}")
        self.limit = limit
        self.clock = clock
        self.max_keys = max_keys
        self._windows: dict[Hashable, tuple[int, int]] = {}  # key -> (second, count)

    def allow(self, key: Hashable) -> bool:
        """Count one write of ``key``; ``False`` when it is past the limit."""
        if self.limit == 0:
            return True
        second = int(self.clock())
        start, count = self._windows.get(key, (second, 0))
        if start != second:
            count = 0
        if count >= self.limit:
            return False
        if key not in self._windows and len(self._windows) >= self.max_keys:
            self._forget(second)
        self._windows[key] = (second, count + 1)
        return True

    def _forget(self, second: int) -> None:
        stale = [k for k, (start, _) in self._windows.items() if start != second]
        for k in stale or list(self._windows)[: self.max_keys // 2]:
            del self._windows[k]
