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
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from ..errors import InvalidIdError
from ..pb.oprc_data_pb2 import EventInfo, TriggerPayload
from ..pb.oprc_invoke_pb2 import InvocationRequest, ObjectInvocationRequest
from . import pb_wire, zenoh_keys
from .batching import is_batched
from .codes import FUNC_NUMBERS
from .conditions import includes_old
from .keys import (
    PartitionKeys,
    parse_field_name,
    parse_object_segment,
)
from .outbox import OutboxEntry, OutboxEvent
from .triggers import DELIVERY_MODES, DELIVERY_OPTION, Target, check_target

__all__ = [
    "DELIVERY_MODES",
    "Delivery",
    "Dispatch",
    "build_dispatch",
    "check_target",
    "event_id",
    "invocation_id",
    "traceparent_for",
    "trigger_key",
    "trigger_payload",
    "trigger_payload_json",
    "wrap",
]

Delivery = Literal["put", "put-odgm", "invoke"]
_json = msgspec.json.Encoder()


def event_id(partition: PartitionKeys, entry_id: str, index: int) -> str:
    """A stable id for event ``index`` of an outbox entry (same on every redelivery)."""
    return f"{partition.cls_id}/{partition.partition_id}/{entry_id}/{index}"


def invocation_id(event: str, target_index: int) -> str:
    """A stable id per (event, target): a redelivered trigger carries the same id.

    Formatted as a UUID (the 16 bytes of a BLAKE2b digest of the pair)."""
    h = hashlib.blake2b(f"{event}#{target_index}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def traceparent_for(parent: str | None, event: str, inv_id: str) -> str:
    """W3C traceparent for one invocation: the write's trace id (or one derived from the
    event when the write had none) and a span id derived from the invocation id."""
    trace_id, flags = _trace(parent, event)
    return f"00-{trace_id}-{inv_id.replace('-', '')[:16]}-{flags}"


def _trace(parent: str | None, event: str) -> tuple[str, str]:
    """The trace id and flags of an event's invocations (see :func:`traceparent_for`)."""
    if parent:
        parts = parent.split("-")
        if len(parts) >= 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
            return parts[1], parts[3][:2]
    return hashlib.blake2b(event.encode(), digest_size=16).hexdigest(), "01"


def trigger_key(target: Target, inv_id: str, delivery: str = "put") -> str:
    """The Zenoh key a trigger goes to (PUT; GET on the invoke key in ``invoke`` mode)."""
    oid = target.object_segment if target.stateful else None
    return zenoh_keys.key(delivery, target.cls_id, target.partition_id, target.fn_id, oid, inv_id)


def _event_fields(
    entry: OutboxEntry, event: OutboxEvent, context: dict[str, str]
) -> dict[str, Any]:
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
    """The platform's JSON ``TriggerPayload`` (see the module docstring for the shape);
    ``previous_payload`` only when ``previous`` is given (``oprc.include_old``)."""
    payload = None if event.payload is None else list(event.payload)
    doc: dict[str, Any] = {
        "event_info": _event_fields(entry, event, context),
        "original_payload": payload,
    }
    if previous is not None:
        doc["previous_payload"] = list(previous)
    return _json.encode(doc)


def trigger_payload(
    entry: OutboxEntry,
    event: OutboxEvent,
    context: dict[str, str],
    previous: bytes | None = None,
) -> TriggerPayload:
    """The ``TriggerPayload`` protobuf message (``previous_payload`` set from ``previous``)."""
    fields = _event_fields(entry, event, context)
    info = EventInfo(**{k: v for k, v in fields.items() if v is not None and k != "context"})
    info.context.update(context)
    message = TriggerPayload(event_info=info)
    if event.payload is not None:
        message.original_payload = event.payload
    if previous is not None:
        message.previous_payload = previous
    return message


#: a context that no id can spell inside a JSON string: where the real one goes
_MARK: Final = "\x00context\x00"
_MARKED: Final = b'"context":' + msgspec.json.encode(_MARK)


class _EventParts:
    """What every trigger of one event shares, built once: its id, its trace, and its
    payload around the per-trigger ``context`` (JSON bytes, or protobuf fields)."""

    __slots__ = ("entry", "event", "event_id", "json", "pb", "trace")

    def __init__(self, entry: OutboxEntry, event: OutboxEvent) -> None:
        self.entry, self.event = entry, event
        self.event_id = event_id(entry.partition, entry.origin_id or entry.entry_id, event.index)
        self.trace = _trace(entry.traceparent, self.event_id)
        self.json: tuple[bytes, bytes] | None = None
        self.pb: pb_wire.EventParts | None = None

    def body(
        self, payload_format: str, context: dict[str, str], previous: bytes | None = None
    ) -> bytes:
        """The payload of one trigger; ``previous``: the previous value it carries (field
        4 / ``previous_payload``, the last of the message: appended)."""
        if payload_format == "protobuf":
            if self.pb is None:
                fields = _event_fields(self.entry, self.event, {})
                del fields["context"]
                self.pb = pb_wire.event_parts(fields, self.event.payload)
            return pb_wire.trigger_payload(self.pb, context) + pb_wire.previous(previous)
        if self.json is None:
            whole = trigger_payload_json(self.entry, self.event, _MARK)  # type: ignore[arg-type]
            at = whole.index(_MARKED) + len(b'"context":')
            self.json = whole[:at], whole[at + len(_MARKED) - len(b'"context":') :]
        if previous is None:
            return self.json[0] + _json.encode(context) + self.json[1]
        end = b',"previous_payload":' + _json.encode(list(previous)) + b"}"
        return self.json[0] + _json.encode(context) + self.json[1][:-1] + end


_last: list[_EventParts | None] = [None]  # the event the worker builds triggers for now


def _parts(entry: OutboxEntry, event: OutboxEvent) -> _EventParts:
    last = _last[0]
    if last is not None and last.event is event and last.entry is entry:
        return last
    parts = _last[0] = _EventParts(entry, event)
    return parts


#: the prefix of req_options that configure the event system (oprc.delivery, oprc.when,
#: oprc.include_old, ...): never passed on in the request's ``options``
CONFIG_PREFIX: Final = "oprc."


def request_options(target: Target, extra: dict[str, str]) -> dict[str, str]:
    """The ``options`` of a target's request: ``extra`` and its ``req_options`` (which win)
    without the ``oprc.*`` configuration keys."""
    if not any(k.startswith(CONFIG_PREFIX) for k in target.options):
        return {**extra, **target.options}
    own = {k: v for k, v in target.options.items() if not k.startswith(CONFIG_PREFIX)}
    return {**extra, **own}


def wrap(target: Target, payload: bytes, extra: dict[str, str]) -> bytes:
    """``payload`` as the request of ``target`` (options: :func:`request_options`)."""
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


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One trigger ready to send: Zenoh key, wrapped bytes and what it is for."""

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


def build_dispatch(
    entry: OutboxEntry,
    event: OutboxEvent,
    target_index: int,
    *,
    payload_format: str = "json",
    delivery: Delivery = "put",
) -> Dispatch:
    """Everything one (event, target) pair puts on Zenoh."""
    target = event.targets[target_index]
    check_target(target)
    mode = delivery_mode(target, delivery)
    parts = _parts(entry, event)
    ev_id = parts.event_id
    inv_id = invocation_id(ev_id, target_index)
    trace_id, flags = parts.trace
    context = {
        "depth": str(entry.depth),
        "event_id": ev_id,
        "traceparent": f"00-{trace_id}-{inv_id.replace('-', '')[:16]}-{flags}",
        "invocation_id": inv_id,
    }
    previous = event.old if includes_old(target.options) else None
    body = parts.body(payload_format, context, previous)
    return Dispatch(
        trigger_key(target, inv_id, mode),
        wrap(target, body, context),
        inv_id,
        ev_id,
        target,
        event.event_type,
        mode,
        context["traceparent"],
        entry.depth,
        body if is_batched(target.options) else None,
    )


def delivery_mode(target: Target, default: str) -> str:
    """The delivery of one target: its ``req_options["oprc.delivery"]``, else ``default``."""
    mode = target.options.get(DELIVERY_OPTION, default)
    if mode not in DELIVERY_MODES:
        raise InvalidIdError(
            f"target {target.cls_id}.{target.fn_id}: req_options {DELIVERY_OPTION}={mode!r} "
            f"is not one of {', '.join(DELIVERY_MODES)}"
        )
    return mode
