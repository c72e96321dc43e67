"""Protobuf bytes of the worker's messages from parts built once per event (pure).

Every trigger of one event carries the same ``EventInfo`` except its ``context`` (field 8:
depth, event id, traceparent, invocation id), so the worker serializes the fields before
and after it once per event with the protobuf library
(``SerializeToString(deterministic=True)``), and per trigger only the context, encoded
here, and joins them: fields serialized apart and joined in field order are the
message's bytes.  A ``map<string, string>`` entry is a length-delimited message of its key
(field 1) and value (field 2), both always written; the entries go in the order the
library's deterministic serialization gives that set of keys, asked of the library once
per set (upb's order is not plain byte order: ``"ab"`` comes before ``"a"``).
The invocation request around a payload (``InvocationRequest`` and
``ObjectInvocationRequest``: fields 1 to 4, the ``options`` map 5, the payload 6) is
encoded here too, from a template built once per target (:mod:`.prepared`).
``tests/test_pb_wire.py`` compares each with the library's serialization of the whole
message, byte for byte, for many random inputs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from ..pb.oprc_data_pb2 import EventInfo, TriggerPayload
from ..pb.oprc_invoke_pb2 import InvocationRequest

__all__ = [
    "CONTEXT_FIELD",
    "OPTIONS_FIELD",
    "EventParts",
    "event_parts",
    "map_entries",
    "map_entry",
    "previous",
    "request_head",
    "request_payload",
    "trigger_payload",
    "varint",
]

#: the tag of EventInfo's ``context`` map (field 8) and of a request's ``options`` (field 5)
CONTEXT_FIELD = 0x42
OPTIONS_FIELD = 0x2A

#: an event's EventInfo fields before its context, after it, and TriggerPayload's field 3
EventParts = tuple[bytes, bytes, bytes]

_BEFORE = ("source_cls_id", "source_partition_id", "source_object_id", "event_type", "fn_id")
_BEFORE_TOO = ("key", "timestamp")


_SMALL = [bytes([n]) for n in range(0x80)]


def varint(n: int) -> bytes:
    """``n`` (0 <= n < 2**64) as a protobuf varint."""
    if n < 0x80:
        return _SMALL[n]
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
    return with_context(parts, map_entries(CONTEXT_FIELD, context))


def with_context(parts: EventParts, context: bytes) -> bytes:
    """:func:`trigger_payload` with its context already encoded (:func:`map_entries`)."""
    before, after, payload = parts
    info = before + context + after
    return b"\x0a" + varint(len(info)) + info + payload


def _text(text: str) -> bytes:
    raw = text.encode()
    return varint(len(raw)) + raw


def map_entry(tag: int, key: str, value: str) -> bytes:
    """One entry of a ``map<string, string>`` field whose tag byte is ``tag``."""
    v = value.encode()
    return entry_head(tag, key, len(v)) + v


@functools.lru_cache(maxsize=1024)
def entry_head(tag: int, key: str, size: int) -> bytes:
    """The bytes of a map entry (see :func:`map_entry`) before its value of ``size`` bytes."""
    k = key.encode()
    entry = len(k) + size + 2 + len(varint(len(k))) + len(varint(size))
    return _SMALL[tag] + varint(entry) + b"\x0a" + varint(len(k)) + k + b"\x12" + varint(size)


def map_entries(tag: int, mapping: Mapping[str, str]) -> bytes:
    """A whole ``map<string, string>`` field, entries in deterministic order."""
    return b"".join(map_entry(tag, k, mapping[k]) for k in map_order(tag, mapping))


def map_order(tag: int, keys: Iterable[str]) -> tuple[str, ...]:
    """``keys`` in the order the library serializes a map holding them (deterministic)."""
    return _order(tag, frozenset(keys))


@functools.lru_cache(maxsize=1024)
def _order(tag: int, keys: frozenset[str]) -> tuple[str, ...]:
    if tag == CONTEXT_FIELD:
        whole = _serialized(EventInfo(context=dict.fromkeys(keys, "")))
    else:
        whole = _serialized(InvocationRequest(options=dict.fromkeys(keys, "")))
    order, at = [], 0
    while at < len(whole):  # tag, entry length, 0x0a, key length, key, 0x12, 0x00
        size, at = _read_varint(whole, at + 1)
        length, start = _read_varint(whole, at + 1)
        order.append(whole[start : start + length].decode())
        at += size
    return tuple(order)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at ``data[at:]`` and where it ends."""
    value, shift = 0, 0
    while data[at] & 0x80:
        value |= (data[at] & 0x7F) << shift
        shift += 7
        at += 1
    return value | (data[at] << shift), at + 1


def request_head(partition_id: int, object_id: int | None, cls_id: str, fn_id: str) -> bytes:
    """Fields 1 to 4 of an ``InvocationRequest`` (``object_id`` ``None``) or an
    ``ObjectInvocationRequest``: what comes before its ``options``."""
    head = b"\x08" + varint(partition_id) if partition_id else b""
    if object_id:
        head += b"\x10" + varint(object_id)
    if cls_id:
        head += b"\x1a" + _text(cls_id)
    if fn_id:
        head += b"\x22" + _text(fn_id)
    return head


def request_payload(payload: bytes) -> bytes:
    """A request's field 6 (``payload``), its last: ``b""`` when empty (proto3 default)."""
    return b"\x32" + varint(len(payload)) + payload if payload else b""


def previous(value: bytes | None) -> bytes:
    """``TriggerPayload``'s field 4 (``previous_payload``) holding ``value``; ``b""`` for
    ``None`` (not set).  The last field of the message, so it is appended."""
    if value is None:
        return b""
    return b"\x22" + varint(len(value)) + value
