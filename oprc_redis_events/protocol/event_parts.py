"""What every trigger of one event shares, built once per event (pure; see :mod:`.encode`).

Every trigger of an event carries the same ``TriggerPayload`` but its ``context`` (depth,
event id, traceparent, invocation id), and the context's depth and event id are the
event's: :class:`EventParts` builds the event's id, its trace and its payload around the
trigger's own traceparent and invocation id once, so that a trigger only adds those two.
The JSON around an event's timestamp, context and value depends only on where the event
happened (class, partition, object, event type and key): that frame is kept for the
objects written most recently (:data:`FRAMES`), built by the same encoder as
:func:`trigger_payload_json` (``tests/test_wire.py`` and ``tests/test_pb_wire.py`` compare
the bytes).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec

from . import pb_wire
from .codes import FUNC_NUMBERS
from .keys import PartitionKeys, parse_field_name, parse_object_segment
from .outbox import OutboxEntry, OutboxEvent
from .prepared import CONTEXT_KEYS, context_order

__all__ = [
    "EventParts",
    "event_fields",
    "event_id",
    "trace_of",
    "trigger_payload_json",
]

_json = msgspec.json.Encoder()
#: frames of event payloads kept (JSON around the timestamp, context and value)
FRAMES: Final = 4096


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


def event_fields(entry: OutboxEntry, event: OutboxEvent, context: dict[str, str]) -> dict[str, Any]:
    """``EventInfo``'s fields, in the platform's JSON order (``None``: not set)."""
    object_id = parse_object_segment(entry.object_segment)
    is_func = event.event_type in FUNC_NUMBERS
    key: int | None = None
    key_str: str | None = None
    if not is_func:
        parsed = parse_field_name(event.key)
        key, key_str = (parsed, None) if isinstance(parsed, int) else (None, parsed)
    info: dict[str, Any] = {
        "source_cls_id": entry.partition.cls_id,
        "source_partition_id": entry.partition.partition_id,
        "source_object_id": object_id if isinstance(object_id, int) else 0,
        "event_type": event.event_type,
        "fn_id": event.key if is_func else None,
        "key": key,
        "timestamp": entry.timestamp,
        "context": context,
    }
    if isinstance(object_id, str):
        info["source_object_id_str"] = object_id
    if key_str is not None:
        info["key_str"] = key_str
    return info


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


#: strings no id can hold (the API refuses control characters): where values go
_TS, _CONTEXT, _VALUE = "\0ts\0", "\0context\0", "\0payload\0"
_MARKS: Final = tuple(_json.encode(m) for m in (_TS, _CONTEXT, _VALUE))
_frames: dict[tuple[object, ...], tuple[bytes, bytes, bytes] | None] = {}


def _frame(entry: OutboxEntry, event: OutboxEvent) -> tuple[bytes, bytes, bytes] | None:
    """The JSON payload of ``event`` before its timestamp, between it and its context, and
    between that and its value; ``None`` when an id spells a mark (never a valid id)."""
    p = entry.partition
    where = (p.cls_id, p.partition_id, entry.object_segment, event.event_type, event.key)
    if where in _frames:
        return _frames[where]
    info = event_fields(entry, event, _CONTEXT)  # type: ignore[arg-type]
    info["timestamp"] = _TS
    whole = _json.encode({"event_info": info, "original_payload": _VALUE})
    frame: tuple[bytes, bytes, bytes] | None = None
    if all(whole.count(m) == 1 for m in _MARKS) and whole.endswith(_MARKS[2] + b"}"):
        head, rest = whole.split(_MARKS[0])
        middle, rest = rest.split(_MARKS[1])
        frame = (head, middle, rest[: -len(_MARKS[2]) - 1])
    if len(_frames) >= FRAMES:
        _frames.clear()
    _frames[where] = frame
    return frame


_PB_ORDER: list[tuple[int, ...]] = []  # context_order(CONTEXT_FIELD), once


def _entries(tag: int, depth: int, ev_id: str) -> tuple[bytes, bytes]:
    """The context's depth and event id as entries of the map field ``tag``."""
    return pb_wire.map_entry(tag, "depth", str(depth)), pb_wire.map_entry(tag, "event_id", ev_id)


class EventParts:
    """What every trigger of one event shares (see the module docstring)."""

    __slots__ = (
        "_context",
        "entry",
        "event",
        "event_id",
        "json",
        "options",
        "pb",
        "trace_head",
        "trace_tail",
    )

    def __init__(self, entry: OutboxEntry, event: OutboxEvent) -> None:
        self.entry, self.event = entry, event
        p = entry.partition
        ev_id = f"{p.cls_id}/{p.partition_id}/{entry.origin_id or entry.entry_id}/{event.index}"
        self.event_id = ev_id  # as event_id()
        trace_id, flags = trace_of(entry.traceparent, ev_id)
        self.trace_head, self.trace_tail = f"00-{trace_id}-", f"-{flags}"
        #: the context's depth and event id as entries of a request's ``options``
        self.options = _entries(pb_wire.OPTIONS_FIELD, entry.depth, ev_id)
        self.json: tuple[bytes, ...] | None = None  # (): built whole, per trigger
        self.pb: pb_wire.EventParts | None = None
        self._context: tuple[bytes, bytes] | None = None  # as ``depth``, in the payload

    def json_body(self, traceparent: str, inv_id: str, previous: bytes | None) -> bytes:
        """The JSON payload of one trigger (``previous``: ``oprc.include_old``'s value)."""
        if self.json is None:
            self.json = self._json_parts()
        if not self.json:  # an id spells a mark (never one the API takes): the whole way
            context = {
                "depth": str(self.entry.depth),
                "event_id": self.event_id,
                "traceparent": traceparent,
                "invocation_id": inv_id,
            }
            return trigger_payload_json(self.entry, self.event, context, previous)
        before, after = self.json
        body = before + f'{traceparent}","invocation_id":"{inv_id}"}}'.encode() + after
        if previous is None:
            return body
        return body[:-1] + b',"previous_payload":' + _json.encode(list(previous)) + b"}"

    def _json_parts(self) -> tuple[bytes, ...]:
        """The JSON payload before a trigger's traceparent and after its invocation id."""
        entry, event = self.entry, self.event
        frame = _frame(entry, event)
        if frame is None:
            return ()
        context = b'{"depth":"%d","event_id":' % entry.depth + _json.encode(self.event_id)
        head, middle, tail = frame
        value = b"null" if event.payload is None else _json.encode(list(event.payload))
        before = b"%s%d%s%s" % (head, entry.timestamp, middle, context)
        return before + b',"traceparent":"', tail + value + b"}"

    def pb_body(self, traceparent: str, inv_id: str, previous: bytes | None) -> bytes:
        """The protobuf payload of one trigger."""
        if self.pb is None:
            fields = event_fields(self.entry, self.event, {})
            del fields["context"]
            self.pb = pb_wire.event_parts(fields, self.event.payload)
        if not _PB_ORDER:
            _PB_ORDER.append(context_order(pb_wire.CONTEXT_FIELD))
        tag = pb_wire.CONTEXT_FIELD
        if self._context is None:
            self._context = _entries(tag, self.entry.depth, self.event_id)
        depth, ev_id = self._context
        tp, inv = (
            pb_wire.map_entry(tag, CONTEXT_KEYS[2], traceparent),
            pb_wire.map_entry(tag, CONTEXT_KEYS[3], inv_id),
        )
        values = (depth, ev_id, tp, inv)
        context = b"".join([values[i] for i in _PB_ORDER[0]])
        return pb_wire.with_context(self.pb, context) + pb_wire.previous(previous)
