"""Decoding what a trigger put on Zenoh, as a receiving function would (used by the demo,
``tail`` and the tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from ..errors import OprcEventsError
from ..pb.oprc_data_pb2 import EventInfo, TriggerBatch, TriggerPayload
from ..pb.oprc_invoke_pb2 import InvocationRequest, ObjectInvocationRequest
from . import zenoh_keys
from .codes import by_number

__all__ = [
    "ReceivedBatch",
    "ReceivedTrigger",
    "decode_batch",
    "decode_trigger",
    "parse_trigger_batch",
    "parse_trigger_payload",
]


@dataclass(frozen=True, slots=True)
class ReceivedTrigger:
    """One received trigger: the request wrapper and the TriggerPayload inside it."""

    key: str
    request: InvocationRequest | ObjectInvocationRequest
    payload: TriggerPayload
    payload_format: str

    @property
    def invocation_id(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def event_name(self) -> str:
        number = self.payload.event_info.event_type
        kind = by_number(number)
        return kind.name if kind is not None else f"UNKNOWN({number})"

    @property
    def field(self) -> int | str | None:
        info = self.payload.event_info
        if info.HasField("key"):
            return info.key
        if info.HasField("key_str"):
            return info.key_str
        return None

    @property
    def target_object_id(self) -> int | str | None:
        """The object a stateful target runs on (``None`` for a stateless one)."""
        if not isinstance(self.request, ObjectInvocationRequest):
            return None
        return self.request.options.get("object_id_str") or self.request.object_id

    @property
    def depth(self) -> int:
        return int(self.payload.event_info.context.get("depth", "0"))

    def describe(self) -> str:
        info = self.payload.event_info
        source = (
            info.source_object_id_str
            if info.HasField("source_object_id_str")
            else str(info.source_object_id)
        )
        value = (
            repr(self.payload.original_payload)
            if self.payload.HasField("original_payload")
            else "-"
        )
        if self.payload.HasField("previous_payload"):  # oprc.include_old
            value += f" old={self.payload.previous_payload!r}"
        target = f"{self.request.cls_id}.{self.request.fn_id}"
        if self.target_object_id is not None:
            target += f"[{self.target_object_id}]"
        return (
            f"{self.event_name:<13} {info.source_cls_id}/{info.source_partition_id}/{source} "
            f"field={self.field} value={value} -> {target} depth={self.depth} "
            f"invocation={self.invocation_id}"
        )


def _payload_from_json(body: bytes) -> TriggerPayload:
    return _payload_from_doc(json.loads(body))


def _payload_from_doc(doc: dict[str, Any]) -> TriggerPayload:
    info = {k: v for k, v in doc["event_info"].items() if v is not None}
    message = TriggerPayload(event_info=EventInfo(**info))
    if doc.get("original_payload") is not None:
        message.original_payload = bytes(doc["original_payload"])
    if doc.get("previous_payload") is not None:
        message.previous_payload = bytes(doc["previous_payload"])
    return message


def parse_trigger_payload(body: bytes) -> TriggerPayload:
    """A ``TriggerPayload`` from its JSON (platform shape) or protobuf encoding."""
    if body[:1] == b"{":
        return _payload_from_json(body)
    payload = TriggerPayload()
    payload.ParseFromString(body)
    return payload


def _unwrap(
    key: str, body: bytes, what: str
) -> tuple[InvocationRequest | ObjectInvocationRequest, bytes, str]:
    """The request wrapper of a message put on ``key`` (an object invocation when the key
    names an object), its payload and that payload's format."""
    parts = zenoh_keys.parse_key(key)
    stateful = parts.object_segment is not None if parts is not None else "/objects/" in key
    request: InvocationRequest | ObjectInvocationRequest = (
        ObjectInvocationRequest() if stateful else InvocationRequest()
    )
    try:
        request.ParseFromString(body)
    except DecodeError as err:
        raise OprcEventsError(f"message on {key!r} is not {what}: {err}") from err
    inner = request.payload
    return request, inner, "json" if inner[:1] == b"{" else "protobuf"


def decode_trigger(key: str, body: bytes) -> ReceivedTrigger:
    """Decode a trigger put on ``key``; raises :class:`OprcEventsError` when it is not one."""
    request, inner, fmt = _unwrap(key, body, "a trigger")
    try:
        return ReceivedTrigger(key, request, parse_trigger_payload(inner), fmt)
    except (DecodeError, ValueError, KeyError, TypeError) as err:
        raise OprcEventsError(f"message on {key!r} is not a trigger: {err}") from err


def parse_trigger_batch(body: bytes) -> list[TriggerPayload]:
    """The triggers of a ``TriggerBatch`` (a batched target's payload), JSON or protobuf."""
    if body[:1] == b"{":
        return [_payload_from_doc(t) for t in json.loads(body)["triggers"]]
    return list(TriggerBatch.FromString(body).triggers)


@dataclass(frozen=True, slots=True)
class ReceivedBatch:
    """One received batch: the request wrapper and the triggers inside it, in order."""

    key: str
    request: InvocationRequest | ObjectInvocationRequest
    triggers: list[TriggerPayload]
    payload_format: str

    @property
    def invocation_id(self) -> str:
        """The batch's invocation id (the request's ``invocation_id`` option)."""
        return self.request.options.get("invocation_id") or self.key.rsplit("/", 1)[-1]


def decode_batch(key: str, body: bytes) -> ReceivedBatch:
    """Decode a batch put on ``key``; raises :class:`OprcEventsError` when it is not one."""
    request, inner, fmt = _unwrap(key, body, "a trigger batch")
    try:
        return ReceivedBatch(key, request, parse_trigger_batch(inner), fmt)
    except (DecodeError, ValueError, KeyError, TypeError) as err:
        raise OprcEventsError(f"message on {key!r} is not a trigger batch: {err}") from err
