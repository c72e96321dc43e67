"""What every trigger of one event shares, built once per event (pure; see :mod:`.encode`).

Every trigger of an event carries the same ``TriggerPayload`` but its ``context`` (depth,
event id, traceparent, invocation id), and the context's depth and event id are the
event's: :func:`event_parts` builds the event's id, its trace and its payload around the
trigger's own traceparent and invocation id once, so that a trigger only joins those two
in.  What depends only on where the event happened (class, partition, object, event type
and key) comes from :mod:`.places`; the timestamp, the context and the original payload are
encoded here (``tests/test_wire.py``, ``tests/test_pb_wire.py`` and
``tests/test_event_parts.py`` compare the bytes with the library's).  A worker in steady
state meets a new event per entry: this runs once per entry, so it is kept to a few joins.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable
from typing import Any, Final

import msgspec

from . import pb_wire
from .keys import PartitionKeys
from .outbox import OutboxEntry, OutboxEvent
from .places import FRAMES, event_fields, json_frame, json_frames, pb_frame, pb_frames
from .prepared import context_order

__all__ = [
    "EventParts",
    "event_fields",
    "event_id",
    "event_parts",
    "trace_of",
    "trigger_payload_json",
    "varint",
]

_json = msgspec.json.Encoder()


def event_id(partition: PartitionKeys, entry_id: str, index: int) -> str:
    """A stable id for event ``index`` of an outbox entry (same on every redelivery)."""
    return f"{partition.cls_id}/{partition.partition_id}/{entry_id}/{index}"


def trace_of(parent: str | None, event: str) -> tuple[str, str]:
    """The trace id and flags of an event's invocations: the write's (``parent``), or
    derived from the event when the write had none."""
    if parent:
        parts = parent.split("-")
        if len(parts) >= 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
            return parts[1], parts[3][:2]
    return hashlib.blake2b(event.encode(), digest_size=16).hexdigest(), "01"


def trigger_payload_json(
    entry: OutboxEntry,
    event: OutboxEvent,
    context: dict[str, str],
    previous: bytes | None = None,
) -> bytes:
    """The platform's JSON ``TriggerPayload`` (see :mod:`.encode`); ``previous_payload``
    only when ``previous`` is given (``oprc.include_old``)."""
    payload = None if event.payload is None else list(event.payload)
    doc: dict[str, Any] = {
        "event_info": event_fields(entry, event, context),
        "original_payload": payload,
    }
    if previous is not None:
        doc["previous_payload"] = list(previous)
    return _json.encode(doc)


class EventParts(msgspec.Struct, frozen=True, gc=False):
    """What every trigger of one event shares in one payload format (see the module
    docstring): a trigger's payload is ``before``, its first own value, ``sep``, its second,
    ``after`` (``tp_first``: the traceparent comes first, else the invocation id);
    ``before`` is ``None`` when the payload must be built whole (an id spells a mark)."""

    entry: OutboxEntry
    event: OutboxEvent
    fmt: str
    event_id: str
    #: the traceparent of a trigger: ``trace_head``, 16 hex digits, ``trace_tail``
    trace_head: str
    trace_tail: str
    #: the context's depth and event id as entries of a request's ``options``
    options: tuple[bytes, bytes]
    #: the head of the traceparent's ``options`` entry (its length is the event's)
    tp_head: bytes
    before: bytes | None
    sep: bytes
    after: bytes
    tp_first: bool


_blake2b = hashlib.blake2b
_OPTIONS, _CTX = pb_wire.OPTIONS_FIELD, pb_wire.CONTEXT_FIELD
_head = pb_wire.entry_head
#: the JSON between a trigger's traceparent and its invocation id
_JSON_SEP: Final = b'","invocation_id":"'
_INV_SIZE: Final = 36  # an invocation id is a UUID's 36 characters
_TP_SIZE: Final = 55  # a traceparent: 00-{32 hex}-{16 hex}-{2 hex}


def event_parts(entry: OutboxEntry, event: OutboxEvent, fmt: str) -> EventParts:
    """The parts of ``event``'s triggers in ``fmt`` (``json`` or ``protobuf``)."""
    p = entry.partition
    ev_id = f"{p.cls_id}/{p.partition_id}/{entry.origin_id or entry.entry_id}/{event.index}"
    raw_id = ev_id.encode()  # as event_id()
    if entry.traceparent:
        trace_id, flags = trace_of(entry.traceparent, ev_id)
        tp_size = len(f"00-{trace_id}--{flags}".encode()) + 16
    else:  # as trace_of() without a parent
        trace_id, flags = _blake2b(raw_id, digest_size=16).hexdigest(), "01"
        tp_size = _TP_SIZE
    depth = _DEPTHS.get(entry.depth) or _depth(entry.depth)
    heads = _HEADS.get((len(raw_id), tp_size)) or _heads(len(raw_id), tp_size)
    body: tuple[bytes | None, bytes, bytes, bool]
    if fmt == "protobuf":
        body = _pb_parts(entry, event, raw_id, depth[1], heads, tp_size)
    else:
        body = _json_parts(entry, event, ev_id, depth[2])
    return EventParts(
        entry,
        event,
        fmt,
        ev_id,
        f"00-{trace_id}-",
        f"-{flags}",
        (depth[0], heads[0] + raw_id),
        heads[1],
        *body,
    )


#: per depth: its entry in a request's ``options``, in the context, and the JSON before
#: the event id
_DEPTHS: dict[int, tuple[bytes, bytes, bytes]] = {}
#: per (event id size, traceparent size): the heads of the ``options`` entries of the event
#: id and traceparent, and of the context entries of the event id, traceparent and
#: invocation id
_HEADS: dict[tuple[int, int], tuple[bytes, bytes, bytes, bytes, bytes]] = {}


def _depth(depth: int) -> tuple[bytes, bytes, bytes]:
    if len(_DEPTHS) >= FRAMES:
        _DEPTHS.clear()
    found = _DEPTHS[depth] = (
        pb_wire.map_entry(_OPTIONS, "depth", str(depth)),
        pb_wire.map_entry(_CTX, "depth", str(depth)),
        b'{"depth":"%d","event_id":' % depth,
    )
    return found


def _heads(id_size: int, tp_size: int) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    if len(_HEADS) >= FRAMES:
        _HEADS.clear()
    found = _HEADS[(id_size, tp_size)] = (
        _head(_OPTIONS, "event_id", id_size),
        _head(_OPTIONS, "traceparent", tp_size),
        _head(_CTX, "event_id", id_size),
        _head(_CTX, "traceparent", tp_size),
        _head(_CTX, "invocation_id", _INV_SIZE),
    )
    return found


def _json_parts(
    entry: OutboxEntry, event: OutboxEvent, ev_id: str, depth: bytes
) -> tuple[bytes | None, bytes, bytes, bool]:
    """The JSON payload before a trigger's traceparent, between it and its invocation id,
    and after that (``depth``: the context before the event id)."""
    p = entry.partition
    where = (p.cls_id, p.partition_id, entry.object_segment, event.event_type, event.key)
    frame = json_frames.get(where) or json_frame(entry, event, where)  # the cache first
    if frame is None:
        return None, b"", b"", True
    head, middle, tail = frame
    value = b"null" if event.payload is None else _json.encode(list(event.payload))
    ts = b"%d" % entry.timestamp
    before = b"".join((head, ts, middle, depth, _json.encode(ev_id), b',"traceparent":"'))
    return before, _JSON_SEP, b"".join((b'"}', tail, value, b"}")), True


def _pb_parts(
    entry: OutboxEntry,
    event: OutboxEvent,
    raw_id: bytes,
    depth: bytes,
    heads: tuple[bytes, ...],
    tp_size: int,
) -> tuple[bytes, bytes, bytes, bool]:
    """The protobuf payload before a trigger's first own context value, between its two,
    and after the second: EventInfo's fields but its timestamp and context are serialized
    by the library once per place (:func:`.places.pb_frame`)."""
    p = entry.partition
    where = (p.cls_id, p.partition_id, entry.object_segment, event.event_type, event.key)
    head, after = pb_frames.get(where) or pb_frame(entry, event, where)  # the cache first
    ts = _timestamp(entry.timestamp)
    evid = heads[2] + raw_id
    a, b, tp_first, pick = _PLAN[0] if _PLAN else _context_plan()
    # the context's entries in the library's order, a trigger's own values left out
    pieces = pick((depth, evid, heads[3], heads[4]))
    size = len(head) + len(ts) + len(after) + len(depth) + len(evid) + len(heads[3])
    size += len(heads[4]) + _INV_SIZE + tp_size
    before = b"".join((b"\x0a", varint(size), head, ts, *pieces[: a + 1]))
    value = event.payload
    rest = (*pieces[b + 1 :], after)
    if value is not None:
        rest += (b"\x1a", varint(len(value)), value)
    return before, b"".join(pieces[a + 1 : b + 1]), b"".join(rest), tp_first


_PLAN: list[tuple[int, int, bool, Callable[[tuple[bytes, ...]], tuple[bytes, ...]]]] = []


def _context_plan() -> tuple[int, int, bool, Callable[[tuple[bytes, ...]], tuple[bytes, ...]]]:
    """Where a trigger's own context values go among the context's entries (in the order
    the library gives the four keys, asked once): the places of the first and second,
    whether the first is the traceparent (slot 2; the invocation id is slot 3), and what
    puts the four in that order."""
    order = context_order(_CTX)
    a, b = (i for i, slot in enumerate(order) if slot >= 2)
    _PLAN.append((a, b, order[a] == 2, operator.itemgetter(*order)))
    return _PLAN[0]


_SMALL = [bytes([n]) for n in range(0x80)]
_CONTINUED = [bytes([0x80 | n]) for n in range(0x80)]


def varint(n: int) -> bytes:
    """:func:`.pb_wire.varint`, quicker for the sizes of payloads (below 16,384)."""
    if n < 0x80:
        return _SMALL[n]
    if n < 0x4000:
        return _CONTINUED[n & 0x7F] + _SMALL[n >> 7]
    return pb_wire.varint(n)


_TS_HIGH: list[tuple[int, bytes]] = [(-1, b"")]  # the last timestamp's varint but its first byte


def _timestamp(ts: int) -> bytes:
    """EventInfo's field 7 (uint64; 0: not written).  Its varint but the first byte changes
    every 128 ms: it is kept while it stays the same."""
    if ts < 0x80:
        return b"\x38" + pb_wire.varint(ts) if ts else b""
    high, rest = _TS_HIGH[0]
    if ts >> 7 != high:
        rest = pb_wire.varint(ts >> 7)
        _TS_HIGH[0] = (ts >> 7, rest)
    return b"\x38" + _CONTINUED[ts & 0x7F] + rest
