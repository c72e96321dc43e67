"""What an event's payload holds that depends only on where it happened (pure; see
:mod:`.event_parts`).

A place is (class, partition, object, event type, key).  For the places written most
recently (:data:`FRAMES`) the JSON around an event's timestamp, context and value is kept,
built by the same encoder as :func:`.event_parts.trigger_payload_json`, and EventInfo's
protobuf fields before the timestamp and after the context, serialized by the protobuf
library.  A worker meets new objects all the time (many objects written at random): a place
not kept yet is built from its template, kept per class, partition, event type and key,
with the object id put in (JSON: the encoder's spelling where a mark stood; protobuf: field
3, a number, or 9, a string, in field order as the library writes them).
``tests/test_event_parts.py`` compares every trigger with the libraries' whole
serialization.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from . import pb_wire
from .codes import FUNC_NUMBERS
from .keys import parse_field_name, parse_object_segment
from .outbox import OutboxEntry, OutboxEvent

__all__ = [
    "FRAMES",
    "Frame",
    "Place",
    "event_fields",
    "json_frame",
    "json_frames",
    "pb_frame",
    "pb_frames",
]

_json = msgspec.json.Encoder()
#: places kept (and templates: their frames but the object id), per format
FRAMES: Final = 4096


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


#: strings no id can hold (the API refuses control characters): where values go
_TS, _CONTEXT, _VALUE, _OBJECT = "\0ts\0", "\0context\0", "\0payload\0", "\0object\0"
_MARKS: Final = tuple(_json.encode(m) for m in (_TS, _CONTEXT, _VALUE, _OBJECT))
_OBJECT_MARK: Final = _MARKS[3]
Frame = tuple[bytes, bytes, bytes]
#: a place: class, partition, object (as spelled in keys), event type, key
Place = tuple[str, int, str, int, str]
#: per place: the JSON frame of its events (None: built whole, an id spells a mark)
json_frames: dict[Place, Frame | None] = {}
#: per place but its object (class, partition, event type, key, whether the object id is a
#: string): the frame with a mark where the object id goes
_json_templates: dict[tuple[object, ...], Frame | None] = {}
_UNSEEN: Final = (b"", b"", b"")  # not in json_frames (a real frame is never this)


def json_frame(entry: OutboxEntry, event: OutboxEvent, where: Place) -> Frame | None:
    """The JSON payload of ``event`` (at ``where``, its :data:`Place`) before its timestamp,
    between it and its context, and between that and its value; ``None`` when an id spells
    a mark (never a valid id).  A worker meets new objects all the time: a place not seen
    yet is its place's template (built once per class, partition, event type and key) with
    the object id put in."""
    p = entry.partition
    found = json_frames.get(where, _UNSEEN)
    if found is not _UNSEEN:
        return found
    oid = parse_object_segment(entry.object_segment)
    text_id = isinstance(oid, str)
    shape = (p.cls_id, p.partition_id, event.event_type, event.key, text_id)
    template = _json_templates.get(shape, _UNSEEN)
    if template is _UNSEEN:
        template = _template(entry, event, text_id)
        if len(_json_templates) >= FRAMES:
            _json_templates.clear()
        _json_templates[shape] = template
    frame: Frame | None = None
    if template is not None:  # the object id as the encoder spells it: a number or a string
        spelled = _json.encode(oid) if isinstance(oid, str) else b"%d" % oid
        head, middle, rest = template
        frame = (head.replace(_OBJECT_MARK, spelled), middle, rest.replace(_OBJECT_MARK, spelled))
    if len(json_frames) >= FRAMES:
        json_frames.clear()
    json_frames[where] = frame
    return frame


def _template(entry: OutboxEntry, event: OutboxEvent, text_id: bool) -> Frame | None:
    """:func:`json_frame` of ``event``'s place with a mark for its object id (which comes
    before the timestamp, or, a string, after the context); ``None`` when an id spells a
    mark."""
    info = event_fields(entry, event, _CONTEXT)  # type: ignore[arg-type]
    info["source_object_id_str" if text_id else "source_object_id"] = _OBJECT
    info["timestamp"] = _TS
    whole = _json.encode({"event_info": info, "original_payload": _VALUE})
    if not all(whole.count(m) == 1 for m in _MARKS) or not whole.endswith(_MARKS[2] + b"}"):
        return None
    head, rest = whole.split(_MARKS[0])
    middle, rest = rest.split(_MARKS[1])
    return head, middle, rest[: -len(_MARKS[2]) - 1]


#: per place: EventInfo's protobuf fields before its timestamp and after its context
pb_frames: dict[Place, tuple[bytes, bytes]] = {}
#: per place but its object (as :data:`_json_templates`, whatever the object id's kind):
#: EventInfo's fields 1 and 2, then 4 to 6, and 10 (the object id is field 3, a number, or
#: 9, a string)
_pb_templates: dict[tuple[object, ...], tuple[bytes, bytes, bytes]] = {}


def pb_frame(entry: OutboxEntry, event: OutboxEvent, where: Place) -> tuple[bytes, bytes]:
    """EventInfo's fields before its timestamp (1 to 6) and after its context (9, 10), as
    the protobuf library serializes them, kept per place as :func:`json_frame` is: a place not
    seen yet is its template with the object id's field put in (in field order, as the
    library writes them; ``tests/test_event_parts.py`` compares)."""
    p = entry.partition
    found = pb_frames.get(where)
    if found is None:
        oid = parse_object_segment(entry.object_segment)
        shape = (p.cls_id, p.partition_id, event.event_type, event.key)
        template = _pb_templates.get(shape) or _pb_template(entry, event, shape)
        first, then, after = template
        if isinstance(oid, str):  # field 9 (a string: length-delimited), before field 10
            raw = oid.encode()
            found = first + then, b"\x4a" + pb_wire.varint(len(raw)) + raw + after
        elif oid:  # field 3 (uint64), written unless 0
            found = first + b"\x18" + pb_wire.varint(oid) + then, after
        else:
            found = first + then, after
        if len(pb_frames) >= FRAMES:
            pb_frames.clear()
        pb_frames[where] = found
    return found


def _pb_template(
    entry: OutboxEntry, event: OutboxEvent, shape: tuple[object, ...]
) -> tuple[bytes, bytes, bytes]:
    """:data:`_pb_templates`' parts for ``shape``, serialized by the library."""
    fields = event_fields(entry, event, {})
    del fields["context"]
    fields.update(timestamp=None, source_object_id=None, source_object_id_str=None)
    head, after, _ = pb_wire.event_parts(fields, None)
    first = pb_wire.event_parts({k: fields[k] for k in _FIRST}, None)[0]
    assert head.startswith(first), "fields 1 and 2 come first"
    if len(_pb_templates) >= FRAMES:
        _pb_templates.clear()
    found = _pb_templates[shape] = (first, head[len(first) :], after)
    return found


_FIRST: Final = ("source_cls_id", "source_partition_id")
