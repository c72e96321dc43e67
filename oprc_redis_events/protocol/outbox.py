"""Outbox stream entries: their decoding, and what makes one unusable.

An entry (written by ``lua/write.lua``) is self-contained::

    o   object id as spelled in keys      v   object version after the write
    d   depth of the write                ts  timestamp, ms since the epoch (optional: see below)
    tp  W3C traceparent (optional)        n   number of events
    src the first outbox id of a replayed entry (optional; keeps event and invocation ids)
    g   the only consumer group that dispatches it (a replayed dead letter; optional)
    e<i> event type (3 create, 4 update, 5 delete, 1 complete, 2 error)
    k<i> field name (data events) or function id (function events)
    p<i> new value / function output (absent for delete)
    q<i> the field's previous value (only when a target needs it: ``oprc.when`` or
         ``oprc.include_old``; absent when the field had none)
    t<i> matched targets (msgpack, see :mod:`oprc_redis_events.protocol.triggers`)

The write's time is the milliseconds of the entry's id (of ``src`` for a replayed entry):
the scripts write no ``ts`` (a TIME call costs a script more than the rest of its entry);
an entry that carries one (written by an older version, or by another tool) keeps it.
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
    """One event of an entry (a dataclass: ``dataclasses.replace`` makes a variant of one)."""

    index: int
    event_type: int
    key: str
    payload: bytes | None
    targets: list[Target]
    old: bytes | None = None  # q<i>: the previous value, for targets that need it


class OutboxEntry(msgspec.Struct, frozen=True):
    """One decoded outbox entry (its events' ``targets`` lists may be shared with other
    entries holding the same encoded targets: never change them)."""

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
    raw = fields.get(name)
    if raw is not None and len(raw) <= 20 and raw.isdigit():  # bytes: ASCII digits only
        value = int(raw)
        if value <= limit:
            return value
    return _int_or_refused(fields, name, limit)


def _int_or_refused(fields: Mapping[bytes, bytes], name: bytes, limit: int) -> int:
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


#: most entries repeat what entries before them held (the object, the field, the encoded
#: targets): each is checked (or decoded) once, then looked up; bounded, emptied when full
_CACHE_SIZE = 4096
_objects: dict[bytes, str] = {}
_fields: dict[bytes, str] = {}
_fn_ids: dict[bytes, str] = {}
_targets: dict[bytes, list[Target]] = {}


def _known(
    fields: Mapping[bytes, bytes],
    name: bytes,
    check: Callable[[str], object],
    cache: dict[bytes, str],
) -> str:
    """:func:`_checked`, once per distinct value (``cache``: value -> text)."""
    raw = fields.get(name)
    text = None if raw is None else cache.get(raw)
    if text is None:
        text = _checked(fields, name, check)
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[raw] = text  # type: ignore[index]  # not None: _checked raised
    return text


def _decoded_targets(blob: bytes) -> list[Target]:
    """The targets ``blob`` encodes, decoded once per distinct blob."""
    targets = _targets.get(blob)
    if targets is None:
        targets = decode_targets(blob)
        if len(_targets) >= _CACHE_SIZE:
            _targets.clear()
        _targets[blob] = targets
    return targets


def _names(i: int) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """The fields of event ``i``: e<i>, t<i>, k<i>, p<i>, q<i>."""
    return b"e%d" % i, b"t%d" % i, b"k%d" % i, b"p%d" % i, b"q%d" % i


_NAMES = [_names(i) for i in range(64)]


def _event(fields: Mapping[bytes, bytes], i: int) -> OutboxEvent:
    e, t, k, p, q = _NAMES[i] if i < 64 else _names(i)
    event_type = _int(fields, e)
    kind = by_number(event_type)
    if kind is None:
        raise PoisonEntryError(f"event {i} has unknown event type {event_type}")
    blob = fields.get(t)
    if blob is None:
        raise PoisonEntryError(f"event {i} has no targets (field 't{i}')")
    try:
        targets = _decoded_targets(blob)
    except msgspec.DecodeError as err:
        raise PoisonEntryError(f"targets of event {i} cannot be decoded: {err}") from None
    if kind.data:
        key = _known(fields, k, _check_field, _fields)
    else:
        key = _known(fields, k, _check_fn_id, _fn_ids)
    return OutboxEvent(i, event_type, key, fields.get(p), targets, fields.get(q))


def _check_object(text: str) -> None:
    oid = parse_object_segment(text)
    if isinstance(oid, str):  # a canonical number in range is a valid object id as it is
        object_segment(oid)


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
    raw = fields.get(b"tp")
    if not raw:
        return None
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
    # each field checked in the order of the entry (the first one broken is the reason)
    segment = _known(fields, b"o", _check_object, _objects)
    version, depth = _int(fields, b"v"), _int(fields, b"d")
    ts = _int(fields, b"ts") if b"ts" in fields else None
    traceparent = _traceparent(fields)
    events = [_event(fields, i) for i in range(1, count + 1)]
    origin = _origin(fields, entry_id)
    return OutboxEntry(
        partition,
        entry_id,
        segment,
        version,
        depth,
        _id_ms(origin) if ts is None else ts,
        traceparent,
        events,
        origin,
        _text(fields, b"g") if b"g" in fields else None,
    )


def _id_ms(entry_id: str) -> int:
    """The milliseconds of a stream entry id (the time Redis gave the entry)."""
    ms = entry_id.partition("-")[0]
    if not (ms.isascii() and ms.isdigit()) or len(ms) > 20 or int(ms) > MAX_U64:
        raise PoisonEntryError(f"entry id {_shown(entry_id)} is not a stream entry id")
    return int(ms)
