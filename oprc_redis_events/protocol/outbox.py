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
    q<i> the field's previous value (only when a target needs it: ``oprc.when`` or
         ``oprc.include_old``; absent when the field had none)
    t<i> matched targets (msgpack, see :mod:`oprc_redis_events.protocol.triggers`)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec

from ..errors import InvalidIdError, OprcEventsError
from .codes import by_number
from .keys import (
    MAX_U64,
    PartitionKeys,
    field_name,
    object_segment,
    parse_field_name,
    parse_object_segment,
    validate_id,
)
from .triggers import Target, decode_targets

__all__ = ["OutboxEntry", "OutboxEvent", "PoisonEntryError", "decode_entry"]

MAX_EVENTS = 10_000


class PoisonEntryError(OprcEventsError):
    """An outbox entry that can never be dispatched; it goes to the dead-letter stream."""


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    index: int
    event_type: int
    key: str
    payload: bytes | None
    targets: list[Target]
    old: bytes | None = None  # q<i>: the previous value, for targets that need it


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


_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_STREAM_ID = re.compile(r"[0-9]+-[0-9]+")


def _shown(text: str) -> str:
    """``text`` as it appears in a reason: quoted, and cut when long."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + f"... ({len(text)} characters)"


def _text(fields: Mapping[bytes, bytes], name: bytes) -> str:
    raw = fields.get(name)
    if raw is None:
        raise PoisonEntryError(f"field {name.decode()!r} is missing")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise PoisonEntryError(f"field {name.decode()!r} is not UTF-8") from None


def _int(fields: Mapping[bytes, bytes], name: bytes, limit: int = MAX_U64) -> int:
    """A decimal integer in ``0..limit``."""
    text = _text(fields, name)
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else -1
    if not 0 <= value <= limit:
        raise PoisonEntryError(
            f"field {name.decode()!r} is not an integer in 0..{limit}: {_shown(text)}"
        )
    return value


def _checked(fields: Mapping[bytes, bytes], name: bytes, check: Callable[[str], object]) -> str:
    text = _text(fields, name)
    try:
        check(text)
    except InvalidIdError as err:
        raise PoisonEntryError(f"field {name.decode()!r} is not usable: {err}") from None
    return text


def _event(fields: Mapping[bytes, bytes], i: int) -> OutboxEvent:
    event_type = _int(fields, b"e%d" % i)
    kind = by_number(event_type)
    if kind is None:
        raise PoisonEntryError(f"event {i} has unknown event type {event_type}")
    blob = fields.get(b"t%d" % i)
    if blob is None:
        raise PoisonEntryError(f"event {i} has no targets (field 't{i}')")
    try:
        targets = decode_targets(blob)
    except msgspec.DecodeError as err:
        raise PoisonEntryError(f"targets of event {i} cannot be decoded: {err}") from None
    check = _check_field if kind.data else _check_fn_id
    key = _checked(fields, b"k%d" % i, check)
    old = fields.get(b"q%d" % i)
    return OutboxEvent(i, event_type, key, fields.get(b"p%d" % i), targets, old)


def _check_object(text: str) -> None:
    object_segment(parse_object_segment(text))


def _check_field(text: str) -> None:
    field_name(parse_field_name(text))


def _check_fn_id(text: str) -> None:
    validate_id("function id", text)


def _origin(fields: Mapping[bytes, bytes], entry_id: str) -> str:
    if b"src" not in fields:
        return entry_id
    src = _text(fields, b"src")
    if not _STREAM_ID.fullmatch(src):
        raise PoisonEntryError(f"field 'src' is not a stream entry id: {_shown(src)}")
    return src


def _traceparent(fields: Mapping[bytes, bytes]) -> str | None:
    """The W3C traceparent, or ``None`` when absent or malformed (W3C: ignore it)."""
    raw = fields.get(b"tp") or b""
    text = raw.decode("ascii", errors="replace")
    return text if _TRACEPARENT.fullmatch(text) else None


def decode_entry(
    partition: PartitionKeys, entry_id: str, fields: Mapping[bytes, bytes]
) -> OutboxEntry:
    """Decode one stream entry; raises :class:`PoisonEntryError` naming what is wrong.

    Every field is checked (integers in range, ids as the key layout allows them), as the
    entry may have been written behind the library's back."""
    count = _int(fields, b"n", MAX_EVENTS)
    if count == 0:
        raise PoisonEntryError("field 'n' is 0: an entry has at least one event")
    return OutboxEntry(
        partition=partition,
        entry_id=entry_id,
        object_segment=_checked(fields, b"o", _check_object),
        version=_int(fields, b"v"),
        depth=_int(fields, b"d"),
        timestamp=_int(fields, b"ts"),
        traceparent=_traceparent(fields),
        events=[_event(fields, i) for i in range(1, count + 1)],
        origin_id=_origin(fields, entry_id),
        group=_text(fields, b"g") if b"g" in fields else None,
    )
