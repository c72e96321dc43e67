"""The wire contract with the OPRC platform (``WIRE.md``): payloads, wrappers and keys.

Pure functions: an outbox event and one of its targets in, Zenoh key and bytes out.

* ``TriggerPayload`` as JSON in the platform's exact shape (snake_case, ``event_type`` as
  an integer, bytes as arrays of integers, absent optionals as ``null``), or protobuf.
  The later additive fields ``source_object_id_str`` and ``key_str`` appear in the JSON
  only when set, so a numeric-id event is byte-identical to what the platform produces.
* wrapped as the ``payload`` of an ``ObjectInvocationRequest`` (stateful target) or an
  ``InvocationRequest`` (stateless), ``options`` = the target's ``req_options``;
* PUT on ``oprc/{cls}/{pid}[/objects/{oid}]/async/{fn}/{invocation_id}`` (``put``, the
  seed's keys) or ``.../invokes/{fn}/async/{invocation_id}`` (``put-odgm``).
"""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

from ..pb.oprc_data_pb2 import EventInfo, TriggerPayload
from ..pb.oprc_invoke_pb2 import InvocationRequest, ObjectInvocationRequest
from . import pb_wire, zenoh_keys
from .event_parts import (
    _CONTINUED,
    _SMALL,
    EventParts,
    event_fields,
    event_id,
    event_parts,
    trace_of,
    trigger_payload_json,
    varint,
)
from .outbox import OutboxEntry, OutboxEvent
from .prepared import (
    CONFIG_PREFIX,
    INVOCATION_HEAD,
    PREPARED,
    delivery_mode,
    prepared,
    request_options,
)
from .triggers import DELIVERY_MODES, Target, check_target

__all__ = [
    "CONFIG_PREFIX",
    "DELIVERY_MODES",
    "Delivery",
    "Dispatch",
    "build_dispatch",
    "check_target",
    "delivery_mode",
    "event_id",
    "invocation_id",
    "request_options",
    "traceparent_for",
    "trigger_key",
    "trigger_payload",
    "trigger_payload_json",
    "wrap",
]

Delivery = Literal["put", "put-odgm", "invoke"]


def invocation_id(event: str, target_index: int) -> str:
    """A stable id per (event, target): a redelivered trigger carries the same id.

    Formatted as a UUID (the 16 bytes of a BLAKE2b digest of the pair)."""
    h = hashlib.blake2b(f"{event}#{target_index}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def traceparent_for(parent: str | None, event: str, inv_id: str) -> str:
    """W3C traceparent for one invocation: the write's trace id (or one derived from the
    event when the write had none) and a span id derived from the invocation id."""
    trace_id, flags = trace_of(parent, event)
    return f"00-{trace_id}-{inv_id.replace('-', '')[:16]}-{flags}"


def trigger_key(target: Target, inv_id: str, delivery: str = "put") -> str:
    """The Zenoh key a trigger goes to (PUT; GET on the invoke key in ``invoke`` mode)."""
    oid = target.object_segment if target.stateful else None
    return zenoh_keys.key(delivery, target.cls_id, target.partition_id, target.fn_id, oid, inv_id)


def trigger_payload(
    entry: OutboxEntry,
    event: OutboxEvent,
    context: dict[str, str],
    previous: bytes | None = None,
) -> TriggerPayload:
    """The ``TriggerPayload`` protobuf message (``previous_payload`` set from ``previous``)."""
    fields = event_fields(entry, event, context)
    info = EventInfo(**{k: v for k, v in fields.items() if v is not None and k != "context"})
    info.context.update(context)
    message = TriggerPayload(event_info=info)
    if event.payload is not None:
        message.original_payload = event.payload
    if previous is not None:
        message.previous_payload = previous
    return message


#: per payload format, the event the worker builds triggers for now
_last: dict[str, EventParts] = {}


def wrap(target: Target, payload: bytes, extra: dict[str, str]) -> bytes:
    """``payload`` as the request of ``target`` (options: :func:`request_options`), by the
    protobuf library (a worker's triggers: :meth:`.prepared.Prepared.request`)."""
    options = request_options(target, extra)
    if target.stateful:
        request = ObjectInvocationRequest(
            partition_id=target.partition_id,
            object_id=target.object_id or 0,
            cls_id=target.cls_id,
            fn_id=target.fn_id,
            options=options,
            payload=payload,
        )
        if target.object_id_str is not None:
            request.options.setdefault("object_id_str", target.object_id_str)
        return request.SerializeToString(deterministic=True)
    return InvocationRequest(
        partition_id=target.partition_id,
        cls_id=target.cls_id,
        fn_id=target.fn_id,
        options=options,
        payload=payload,
    ).SerializeToString(deterministic=True)


_wrap = wrap  # the name tests/test_pb_wire.py knows
_json = msgspec.json.Encoder()


class Dispatch(msgspec.Struct, frozen=True, gc=False):
    """One trigger ready to send: Zenoh key, wrapped bytes and what it is for (a
    ``msgspec.Struct``: one is built per trigger, it must be cheap)."""

    key: str
    body: bytes
    invocation_id: str
    event_id: str
    target: Target
    event_type: int
    mode: str = "put"
    traceparent: str | None = None
    depth: int = 0
    #: the TriggerPayload alone (a batched target's trigger: it goes into a TriggerBatch)
    payload: bytes | None = None


_blake2b = hashlib.blake2b


def build_dispatch(
    entry: OutboxEntry,
    event: OutboxEvent,
    target_index: int,
    *,
    payload_format: str = "json",
    delivery: Delivery = "put",
) -> Dispatch:
    """Everything one (event, target) pair puts on Zenoh: what the target's triggers share
    comes from :func:`.prepared.prepared`, what the event's from :func:`event_parts`."""
    target = event.targets[target_index]
    prep = PREPARED.get((id(target), delivery))
    if prep is None or prep.target is not target:
        prep = prepared(target, delivery)  # checks the target first
    parts = _last.get(payload_format)
    if parts is None or parts.event is not event or parts.entry is not entry:
        parts = _last[payload_format] = event_parts(entry, event, payload_format)
    ev_id = parts.event_id
    h = _blake2b(f"{ev_id}#{target_index}".encode(), digest_size=16).hexdigest()
    inv_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"  # as invocation_id()
    traceparent = parts.trace_head + h[:16] + parts.trace_tail  # as traceparent_for()
    tp, inv = traceparent.encode(), inv_id.encode()
    if parts.before is None or (prep.old and event.old is not None):
        body = _body(parts, tp, inv, traceparent, inv_id, event.old if prep.old else None)
    else:
        first, second = (tp, inv) if parts.tp_first else (inv, tp)
        body = b"".join((parts.before, first, parts.sep, second, parts.after))
    joins, (depth, eid) = prep.joins, parts.options
    if joins is None:  # a target whose req_options override a context key
        request = prep.request((depth, eid, parts.tp_head + tp, INVOCATION_HEAD + inv), body)
    else:  # the payload is never empty
        c0, c1, c2, c3, c4 = joins
        n = len(body)  # its varint, as varint(n)
        size = _CONTINUED[n & 0x7F] + _SMALL[n >> 7] if 0x80 <= n < 0x4000 else varint(n)
        request = b"".join((c0, depth, c1, eid, c2, inv, c3, parts.tp_head, tp, c4, size, body))
    return Dispatch(
        prep.key_head + inv_id if prep.keyed else prep.key_head,  # as prep.key(inv_id)
        request, inv_id, ev_id, target, event.event_type, prep.mode, traceparent,
        entry.depth, body if prep.batched else None,
    )  # fmt: skip


def _body(
    parts: EventParts, tp: bytes, inv: bytes, traceparent: str, inv_id: str, previous: bytes | None
) -> bytes:
    """One trigger's payload: the event's ``parts`` around its traceparent and invocation
    id (``tp``, ``inv`` encoded), and ``previous`` (``oprc.include_old``'s value)."""
    before = parts.before
    if before is None:  # an id spells a mark (never one the API takes): the whole way
        context = {
            "depth": str(parts.entry.depth),
            "event_id": parts.event_id,
            "traceparent": traceparent,
            "invocation_id": inv_id,
        }
        return trigger_payload_json(parts.entry, parts.event, context, previous)
    if parts.tp_first:
        body = b"".join((before, tp, parts.sep, inv, parts.after))
    else:
        body = b"".join((before, inv, parts.sep, tp, parts.after))
    if previous is None:
        return body
    if parts.fmt == "protobuf":
        return body + pb_wire.previous(previous)
    return body[:-1] + b',"previous_payload":' + _json.encode(list(previous)) + b"}"
