"""Payload, wrapper and key building against WIRE.md (pure)."""

from __future__ import annotations

import json

import pytest

from oprc_redis_events import (
    EventType,
    InvocationRequest,
    ObjectInvocationRequest,
    TriggerPayload,
)
from oprc_redis_events.protocol.decode import decode_trigger
from oprc_redis_events.protocol.encode import (
    build_dispatch,
    invocation_id,
    traceparent_for,
    trigger_key,
    trigger_payload,
    trigger_payload_json,
)
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.outbox import OutboxEntry, OutboxEvent
from oprc_redis_events.protocol.triggers import Target

pytestmark = pytest.mark.quick  # no server: `make quick`

WIRE_EXAMPLE = (
    b'{"event_info":{"source_cls_id":"c","source_partition_id":0,"source_object_id":7,'
    b'"event_type":4,"fn_id":null,"key":42,"timestamp":1732680000000,"context":{}},'
    b'"original_payload":[104,105]}'
)

STATELESS = Target("notification_service", 0, None, None, "send_notification", {"a": "b"})
STATEFUL = Target("audit", 3, 12, None, "record", {})


def entry(
    *events: OutboxEvent, obj: str = "7", depth: int = 0, tp: str | None = None
) -> OutboxEntry:
    return OutboxEntry(
        PartitionKeys.of("c", 0), "1732680000000-0", obj, 2, depth, 1732680000000, tp, list(events)
    )


def update(payload: bytes | None = b"hi", key: str = "42", etype: int = 4) -> OutboxEvent:
    return OutboxEvent(1, etype, key, payload, [STATELESS, STATEFUL])


def test_json_is_byte_identical_to_the_wire_example() -> None:
    assert trigger_payload_json(entry(update()), update(), {}) == WIRE_EXAMPLE


def test_json_delete_and_string_ids() -> None:
    doc = json.loads(
        trigger_payload_json(entry(obj="user-7"), update(None, "name", 5), {"depth": "1"})
    )
    info = doc["event_info"]
    assert doc["original_payload"] is None
    assert info["source_object_id"] == 0
    assert info["source_object_id_str"] == "user-7"
    assert info["key"] is None
    assert info["key_str"] == "name"
    assert info["event_type"] == EventType.EVENT_TYPE_DATA_DELETE
    assert info["context"] == {"depth": "1"}


def test_protobuf_payload_matches_the_json_one() -> None:
    message = trigger_payload(entry(), update(), {"depth": "0"})
    parsed = TriggerPayload.FromString(message.SerializeToString())
    assert parsed.event_info.source_cls_id == "c"
    assert parsed.event_info.source_object_id == 7
    assert parsed.event_info.key == 42
    assert not parsed.event_info.HasField("fn_id")
    assert parsed.event_info.event_type == EventType.EVENT_TYPE_DATA_UPDATE
    assert parsed.original_payload == b"hi"
    assert dict(parsed.event_info.context) == {"depth": "0"}
    empty = trigger_payload(entry(), update(None, etype=5), {})
    assert not empty.HasField("original_payload")


def test_keys_for_both_layouts() -> None:
    assert (
        trigger_key(STATELESS, "inv") == "oprc/notification_service/0/async/send_notification/inv"
    )
    assert trigger_key(STATEFUL, "inv") == "oprc/audit/3/objects/12/async/record/inv"
    assert trigger_key(STATELESS, "inv", "put-odgm") == (
        "oprc/notification_service/0/invokes/send_notification/async/inv"
    )
    assert (
        trigger_key(STATEFUL, "inv", "put-odgm")
        == "oprc/audit/3/objects/12/invokes/record/async/inv"
    )
    named = Target("audit", 0, None, "acct-9", "record", {})
    assert trigger_key(named, "i") == "oprc/audit/0/objects/acct-9/async/record/i"


def test_wrappers_and_context() -> None:
    e = entry(update(), tp="00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")
    stateless = build_dispatch(e, e.events[0], 0)
    request = InvocationRequest.FromString(stateless.body)
    assert (request.cls_id, request.fn_id, request.partition_id) == (
        "notification_service",
        "send_notification",
        0,
    )
    options = dict(request.options)
    assert options["a"] == "b"  # the target's req_options, plus what a function needs:
    assert options["depth"] == "0"
    assert options["event_id"] == "c/0/1732680000000-0/1"
    assert options["invocation_id"] == stateless.invocation_id
    assert options["traceparent"].startswith("00-" + "ab" * 16 + "-")
    payload = json.loads(request.payload)
    context = payload["event_info"]["context"]
    assert context["depth"] == "0"
    assert context["event_id"] == "c/0/1732680000000-0/1"
    assert context["traceparent"].startswith("00-" + "ab" * 16 + "-")
    assert stateless.key.endswith("/" + stateless.invocation_id)
    stateful = build_dispatch(e, e.events[0], 1, payload_format="protobuf")
    obj_request = ObjectInvocationRequest.FromString(stateful.body)
    assert (obj_request.object_id, obj_request.partition_id) == (12, 3)
    assert TriggerPayload.FromString(obj_request.payload).event_info.key == 42
    received = decode_trigger(stateful.key, stateful.body)
    assert received.payload_format == "protobuf" and received.field == 42


def test_invocation_ids_are_stable_and_distinct() -> None:
    e = entry(update())
    first = [build_dispatch(e, e.events[0], i).invocation_id for i in range(2)]
    again = [build_dispatch(e, e.events[0], i).invocation_id for i in range(2)]
    assert first == again
    assert first[0] != first[1]
    assert invocation_id("c/0/1-0/1", 0) != invocation_id("c/1/1-0/1", 0)


def test_traceparent_without_parent_is_stable_and_valid() -> None:
    tp = traceparent_for(None, "c/0/1-0/1", invocation_id("c/0/1-0/1", 0))
    version, trace, span, flags = tp.split("-")
    assert (version, len(trace), len(span), flags) == ("00", 32, 16, "01")
    assert tp == traceparent_for(None, "c/0/1-0/1", invocation_id("c/0/1-0/1", 0))


@pytest.mark.parametrize(
    "bad",
    [
        Target("a/b", 0, None, None, "f", {}),
        Target("a", 0, None, None, "f*", {}),
        Target("a", 0, None, "x y", "f", {}),
    ],
)
def test_invalid_targets_fail_to_build(bad: Target) -> None:
    from oprc_redis_events.errors import InvalidIdError

    e = entry(OutboxEvent(1, 4, "42", b"x", [bad]))
    with pytest.raises(InvalidIdError):
        build_dispatch(e, e.events[0], 0)


def test_invocation_id_is_a_uuid_of_the_pair_digest() -> None:
    import hashlib
    import uuid

    digest = hashlib.blake2b(b"c/0/1-0/1#0", digest_size=16).digest()
    assert invocation_id("c/0/1-0/1", 0) == str(uuid.UUID(bytes=digest))
