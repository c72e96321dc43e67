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
