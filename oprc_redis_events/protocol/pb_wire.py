"""A ``TriggerPayload``'s protobuf bytes from parts built once per event (pure).

Every trigger of one event carries the same ``EventInfo`` except its ``context`` (field 8:
depth, event id, traceparent, invocation id), so the worker serializes the fields before
and after it once per event, and per trigger only the context, with the protobuf library
(``SerializeToString(deterministic=True)``), and joins them: fields serialized apart and
joined in field order are the message's bytes.  ``tests/test_pb_wire.py`` compares the
result byte for byte with the library's serialization of the whole message, for many
random inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..pb.oprc_data_pb2 import EventInfo, TriggerPayload

__all__ = ["EventParts", "event_parts", "previous", "trigger_payload", "varint"]

#: an event's EventInfo fields before its context, after it, and TriggerPayload's field 3
EventParts = tuple[bytes, bytes, bytes]

_BEFORE = ("source_cls_id", "source_partition_id", "source_object_id", "event_type", "fn_id")
_BEFORE_TOO = ("key", "timestamp")


def varint(n: int) -> bytes:
    """``n`` (0 <= n < 2**64) as a protobuf varint."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _serialized(message: Any) -> bytes:
    return bytes(message.SerializeToString(deterministic=True))


def event_parts(fields: Mapping[str, Any], original_payload: bytes | None) -> EventParts:
    """The parts of an event's payload: ``fields`` are EventInfo's (``None``: not set),
    without its context."""
    given = {k: v for k, v in fields.items() if v is not None}
    before = {k: given[k] for k in (*_BEFORE, *_BEFORE_TOO) if k in given}
    after = {k: v for k, v in given.items() if k not in before}
    payload = b""
    if original_payload is not None:
        payload = _serialized(TriggerPayload(original_payload=original_payload))
    return _serialized(EventInfo(**before)), _serialized(EventInfo(**after)), payload


def trigger_payload(parts: EventParts, context: Mapping[str, str]) -> bytes:
    """The ``TriggerPayload`` of one trigger of the event ``parts`` stand for."""
    before, after, payload = parts
    info = before + _serialized(EventInfo(context=context)) + after
    return b"\x0a" + varint(len(info)) + info + payload


def previous(value: bytes | None) -> bytes:
    """``TriggerPayload``'s field 4 (``previous_payload``) holding ``value``; ``b""`` for
    ``None`` (not set).  The last field of the message, so it is appended."""
    if value is None:
        return b""
    return b"\x22" + varint(len(value)) + value
