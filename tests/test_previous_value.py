"""``oprc.include_old``: the previous value in ``TriggerPayload.previous_payload`` (field
4; JSON only when set), and the ``oprc.*`` keys stripped from the request options (pure)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oprc_redis_events.pb.oprc_data_pb2 import TriggerPayload
from oprc_redis_events.pb.oprc_invoke_pb2 import InvocationRequest, ObjectInvocationRequest
from oprc_redis_events.protocol.encode import build_dispatch, trigger_payload
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.outbox import OutboxEntry, OutboxEvent
from oprc_redis_events.protocol.triggers import Target

pytestmark = pytest.mark.quick

PLAIN = Target("svc", 0, None, None, "f", {"mine": "1"})
OLD = Target("svc", 0, 5, None, "g", {"oprc.include_old": "true", "mine": "2"})
ALL = Target(
    "svc", 0, None, None, "h",
    {"oprc.include_old": "true", "oprc.when": "true", "oprc.delivery": "put", "oprc.x": "y"},
)  # fmt: skip


def entry(event_type: int, new: bytes | None, old: bytes | None) -> OutboxEntry:
    event = OutboxEvent(1, event_type, "status", new, [PLAIN, OLD, ALL], old)
    return OutboxEntry(PartitionKeys.of("orders", 0), "1-0", "7", 2, 0, 1000, None, [event])


def _body(entry: OutboxEntry, i: int, fmt: str) -> tuple[bytes, dict[str, str]]:
    d = build_dispatch(entry, entry.events[0], i, payload_format=fmt)
    wrapper = ObjectInvocationRequest() if d.target.stateful else InvocationRequest()
    wrapper.ParseFromString(d.body)
    return wrapper.payload, dict(wrapper.options)


@settings(max_examples=100, deadline=None)
@given(st.none() | st.binary(max_size=50), st.none() | st.binary(max_size=50))
def test_the_previous_value_only_for_targets_that_ask(new: bytes | None, old: bytes | None) -> None:
    e = entry(4 if new is not None else 5, new, old)
    for i, wanted in ((0, None), (1, old), (2, old)):
        raw, _ = _body(e, i, "json")
        doc = json.loads(raw)
        assert ("previous_payload" in doc) is (wanted is not None)
        if wanted is not None:
            assert doc["previous_payload"] == list(wanted)
            assert list(doc) == ["event_info", "original_payload", "previous_payload"]
        pb, _ = _body(e, i, "protobuf")
        parsed = TriggerPayload.FromString(pb)
        assert parsed.HasField("previous_payload") is (wanted is not None)
        assert parsed.previous_payload == (wanted or b"")
        expected = trigger_payload(e, e.events[0], dict(parsed.event_info.context), wanted)
        assert pb == expected.SerializeToString(deterministic=True)  # the library's bytes


def test_a_payload_without_the_option_is_unchanged() -> None:
    with_old, without = entry(4, b"b", b"a"), entry(4, b"b", None)
    for fmt in ("json", "protobuf"):
        assert _body(with_old, 0, fmt) == _body(without, 0, fmt)


def test_oprc_keys_are_stripped_from_the_request_options() -> None:
    e = entry(4, b"b", b"a")
    _, plain = _body(e, 0, "json")
    _, old = _body(e, 1, "json")
    _, every = _body(e, 2, "json")
    assert plain["mine"] == "1" and old["mine"] == "2"
    for options in (plain, old, every):
        assert not [k for k in options if k.startswith("oprc.")]
        assert {"depth", "event_id", "invocation_id", "traceparent"} <= set(options)


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_tail_shows_the_previous_value(fmt: str) -> None:
    from oprc_redis_events.cli.tail import as_json
    from oprc_redis_events.protocol.decode import decode_trigger

    e = entry(4, b"paid", b"pending")
    for i, old in ((0, None), (1, "pending")):
        d = build_dispatch(e, e.events[0], i, payload_format=fmt)
        t = decode_trigger(d.key, d.body)
        assert ("value=b'paid' old=b'pending' ->" in t.describe()) is (old is not None)
        assert json.loads(as_json(d.key, t))["previous_payload"] == old
