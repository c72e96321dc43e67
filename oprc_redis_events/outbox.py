"""Outbox stream entries: their decoding, and what makes one unusable.

An entry (written by ``lua/write.lua``) is self-contained::

    o   object id as spelled in keys      v   object version after the write
    d   depth of the write                ts  timestamp, ms since the epoch
    tp  W3C traceparent (optional)        n   number of events
    src the first outbox id of a replayed entry (optional; keeps event and invocation ids)
    g   the only consumer group that dispatches it (a replayed dead letter; optional)
    e<i> event type (3 create, 4 update, 5 delete, 1 complete, 2 error)
    k<i> field name (data events) or function id (function events)
    p<i> new value / function output (absent for delete)
    t<i> matched targets (msgpack, see :mod:`oprc_redis_events.triggers`)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from .errors import OprcEventsError
from .keys import PartitionKeys
from .triggers import Target, decode_targets

__all__ = ["OutboxEntry", "OutboxEvent", "PoisonEntryError", "decode_entry"]

DATA_EVENTS = frozenset({3, 4, 5})
FUNC_EVENTS = frozenset({1, 2})


class PoisonEntryError(OprcEventsError):
    """An outbox entry that can never be dispatched; it goes to the dead-letter stream."""


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    index: int
    event_type: int
    key: str
    payload: bytes | None
    targets: list[Target]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    partition: PartitionKeys
    entry_id: str
    object_segment: str
    version: int
    depth: int
    timestamp: int
    traceparent: str | None
    events: list[OutboxEvent]
    origin_id: str = ""  # the id events are named after: ``src`` when replayed, else entry_id
    group: str | None = None  # set: only this consumer group dispatches the entry


def _text(fields: Mapping[bytes, bytes], name: bytes) -> str:
    raw = fields.get(name)
    if raw is None:
        raise PoisonEntryError(f"field {name.decode()!r} is missing")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise PoisonEntryError(f"field {name.decode()!r} is not UTF-8") from None


def _int(fields: Mapping[bytes, bytes], name: bytes) -> int:
    text = _text(fields, name)
    try:
        return int(text)
    except ValueError:
        raise PoisonEntryError(f"field {name.decode()!r} is not an integer: {text!r}") from None


def _event(fields: Mapping[bytes, bytes], i: int) -> OutboxEvent:
    event_type = _int(fields, b"e%d" % i)
    if event_type not in DATA_EVENTS | FUNC_EVENTS:
        raise PoisonEntryError(f"event {i} has unknown event type {event_type}")
    blob = fields.get(b"t%d" % i)
    if blob is None:
        raise PoisonEntryError(f"event {i} has no targets (field 't{i}')")
    try:
        targets = decode_targets(blob)
    except msgspec.DecodeError as err:
        raise PoisonEntryError(f"targets of event {i} cannot be decoded: {err}") from None
    return OutboxEvent(i, event_type, _text(fields, b"k%d" % i), fields.get(b"p%d" % i), targets)


def decode_entry(
    partition: PartitionKeys, entry_id: str, fields: Mapping[bytes, bytes]
) -> OutboxEntry:
    """Decode one stream entry; raises :class:`PoisonEntryError` naming what is wrong."""
    count = _int(fields, b"n")
    if not 0 < count <= 10_000:
        raise PoisonEntryError(f"event count n={count} is out of range")
    traceparent = fields.get(b"tp")
    return OutboxEntry(
        partition=partition,
        entry_id=entry_id,
        object_segment=_text(fields, b"o"),
        version=_int(fields, b"v"),
        depth=_int(fields, b"d"),
        timestamp=_int(fields, b"ts"),
        traceparent=traceparent.decode(errors="replace") if traceparent else None,
        events=[_event(fields, i) for i in range(1, count + 1)],
        origin_id=_text(fields, b"src") if b"src" in fields else entry_id,
        group=_text(fields, b"g") if b"g" in fields else None,
    )
