"""A TriggerPayload joined from parts (protocol/pb_wire.py) equals the protobuf library's
``SerializeToString(deterministic=True)`` of the whole message byte for byte, for many
random inputs (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oprc_redis_events.pb.oprc_data_pb2 import EventInfo, TriggerPayload
from oprc_redis_events.protocol import pb_wire

pytestmark = pytest.mark.quick

TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
U32 = st.one_of(st.integers(0, 300), st.integers(0, 2**32 - 1))
U64 = st.one_of(st.integers(0, 300), st.integers(0, 2**64 - 1))
MAPS = st.dictionaries(TEXT, TEXT, max_size=6)


@settings(max_examples=300)
@given(
    TEXT, U32, U64, st.integers(0, 5), st.none() | TEXT, st.none() | U32, U64, MAPS,
    st.none() | TEXT, st.none() | TEXT, st.none() | st.binary(max_size=300),
)  # fmt: skip
def test_trigger_payloads(
    cls_id: str,
    pid: int,
    oid: int,
    event_type: int,
    fn_id: str | None,
    key: int | None,
    timestamp: int,
    context: dict[str, str],
    oid_str: str | None,
    key_str: str | None,
    payload: bytes | None,
) -> None:
    fields = {
        "source_cls_id": cls_id,
        "source_partition_id": pid,
        "source_object_id": oid,
        "event_type": event_type,
        "fn_id": fn_id,
        "key": key,
        "timestamp": timestamp,
        "source_object_id_str": oid_str,
        "key_str": key_str,
    }
    info = EventInfo(**{k: v for k, v in fields.items() if v is not None})  # type: ignore[arg-type]
    info.context.update(context)
    message = TriggerPayload(event_info=info)
    if payload is not None:
        message.original_payload = payload
    ours = pb_wire.trigger_payload(pb_wire.event_parts(fields, payload), context)
    assert ours == message.SerializeToString(deterministic=True)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**32 - 1, 2**64 - 1])
def test_varints(n: int) -> None:
    expected = EventInfo(timestamp=n).SerializeToString()[1:] if n else b"\x00"
    assert pb_wire.varint(n) == expected


IDS = st.text(st.sampled_from("abcXYZ09-_."), min_size=1, max_size=12).map(lambda s: "o" + s)


@settings(max_examples=150)
@given(
    IDS, st.integers(0, 2**32 - 1), st.one_of(st.integers(0, 2**64 - 1), IDS),
    st.sampled_from([(3, "7"), (4, "name"), (5, "42"), (1, "fn"), (2, "fn")]),
    st.none() | st.binary(max_size=50), st.integers(0, 2**40), st.integers(0, 2**20),
    st.none() | st.just("00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"), st.booleans(),
)  # fmt: skip
def test_dispatch_bodies_equal_whole_serializations(
    cls_id: str,
    pid: int,
    oid: int | str,
    kind: tuple[int, str],
    payload: bytes | None,
    ts: int,
    depth: int,
    tp: str | None,
    stateful: bool,
) -> None:
    """Built from per-event parts, a trigger's body is what serializing it whole gives."""
    from oprc_redis_events.protocol import encode
    from oprc_redis_events.protocol.keys import PartitionKeys, object_segment
    from oprc_redis_events.protocol.outbox import OutboxEntry, OutboxEvent
    from oprc_redis_events.protocol.triggers import Target

    targets = [
        Target("svc", 1, 9 if stateful else None, None, "f", {"a": "b"}),
        Target("svc2", 0, None, None, "g", {}),
    ]
    event = OutboxEvent(1, kind[0], kind[1], payload, targets)
    entry = OutboxEntry(
        PartitionKeys.of(cls_id, pid % 65536), f"{ts}-0", object_segment(oid), 1, depth, ts, tp,
        [event],
    )  # fmt: skip
    for fmt in ("json", "protobuf"):
        for i in range(2):
            got = encode.build_dispatch(entry, event, i, payload_format=fmt)
            context = {
                "depth": str(depth),
                "event_id": got.event_id,
                "traceparent": encode.traceparent_for(tp, got.event_id, got.invocation_id),
                "invocation_id": got.invocation_id,
            }
            if fmt == "json":
                body = encode.trigger_payload_json(entry, event, context)
            else:
                body = encode.trigger_payload(entry, event, context).SerializeToString(
                    deterministic=True
                )
            assert got.body == encode._wrap(targets[i], body, context)
