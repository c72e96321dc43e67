"""A worker's triggers, built from per-target, per-event and per-place parts
(protocol/prepared.py, protocol/event_parts.py), equal the library's serialization of the
whole payload and request, entry after entry as a worker meets them (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oprc_redis_events.protocol import encode, pb_wire
from oprc_redis_events.protocol.event_parts import varint
from oprc_redis_events.protocol.keys import PartitionKeys, object_segment
from oprc_redis_events.protocol.outbox import OutboxEntry, OutboxEvent
from oprc_redis_events.protocol.triggers import Target

pytestmark = pytest.mark.quick

#: ids the API takes, with what JSON must escape or spell in UTF-8
IDS = st.text(st.sampled_from('ab9-_."\\é中:'), min_size=1, max_size=10).map(lambda s: "o" + s)
TARGETS = [
    Target("svc", 1, None, None, "f", {}),
    Target("svc", 2, 9, None, "g", {"a": "b", "oprc.include_old": "true"}),
    Target('s"vc', 0, None, "user-é", "h", {"depth": "mine", "zz": "1"}),  # overrides depth
    Target("svc", 3, None, None, "f", {"oprc.delivery": "put-odgm", "event_id": "x"}),
]
PARENT = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"


def _entry(cls_id: str, oid: int | str, ts: int, depth: int, tp: str | None, n: int) -> OutboxEntry:
    events = [
        OutboxEvent(1, 4, "7", b"\x00hi\xff", TARGETS, b"old"),
        OutboxEvent(2, 5, "name", None, TARGETS[::-1], None),
        OutboxEvent(3, 1, "fn", b"", TARGETS[:2], b""),
    ]
    partition = PartitionKeys.of(cls_id, 5)
    return OutboxEntry(partition, f"{ts}-{n}", object_segment(oid), 1, depth, ts, tp, events)


def _expected(
    entry: OutboxEntry, event: OutboxEvent, i: int, fmt: str, got: encode.Dispatch
) -> bytes:
    context = {
        "depth": str(entry.depth),
        "event_id": got.event_id,
        "traceparent": encode.traceparent_for(entry.traceparent, got.event_id, got.invocation_id),
        "invocation_id": got.invocation_id,
    }
    target = event.targets[i]
    previous = event.old if target.options.get("oprc.include_old") == "true" else None
    if fmt == "json":
        body = encode.trigger_payload_json(entry, event, context, previous)
    else:
        message = encode.trigger_payload(entry, event, context, previous)
        body = message.SerializeToString(deterministic=True)
    return encode.wrap(target, body, context)


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            IDS, st.one_of(st.integers(0, 2**64 - 1), IDS), st.integers(0, 2**45),
            st.integers(0, 300), st.none() | st.just(PARENT) | st.just("00-" + "1" * 32 + "-x-7"),
        ),
        min_size=1, max_size=4,
    )
)  # fmt: skip
def test_triggers_entry_after_entry_equal_the_librarys(
    entries: list[tuple[str, int | str, int, int, str | None]],
) -> None:
    for n, (cls_id, oid, ts, depth, tp) in enumerate(entries):
        entry = _entry(cls_id, oid, ts, depth, tp, n)
        for event in entry.events:
            for i in range(len(event.targets)):
                for fmt in ("json", "protobuf", "json"):  # a format change keeps the bytes
                    got = encode.build_dispatch(entry, event, i, payload_format=fmt)
                    assert got.invocation_id == encode.invocation_id(got.event_id, i)
                    assert got.body == _expected(entry, event, i, fmt, got)
                    assert got.key == encode.trigger_key(
                        event.targets[i], got.invocation_id, got.mode
                    )


@pytest.mark.parametrize("ts", [0, 1, 127, 128, 16383, 16384, 1795808414609, 2**64 - 1])
def test_timestamps_around_the_kept_varint(ts: int) -> None:
    """The timestamp's varint is kept while all but its first byte stays the same."""
    for t in (ts, ts + 1 if ts < 2**64 - 1 else ts, ts):
        entry = _entry("c", 7, t, 0, None, 0)
        got = encode.build_dispatch(entry, entry.events[1], 0, payload_format="protobuf")
        assert got.body == _expected(entry, entry.events[1], 0, "protobuf", got)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 2**32, 2**64 - 1])
def test_varints(n: int) -> None:
    assert varint(n) == pb_wire.varint(n)


OBJECTS: list[int | str] = [
    0, 1, 127, 128, 16383, 16384, 2**32, 2**63, 2**64 - 1, "o", 'o"\\é中', "o-1", "user-7",
]  # fmt: skip


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_objects_of_one_place_share_its_template(fmt: str) -> None:
    """A place not kept yet is its class's template with the object id put in: objects
    whose ids are numbers around every varint size, 0 (which protobuf leaves out) and
    strings, each seen first after others of the same class, event and key, then again."""
    for n, oid in enumerate([*OBJECTS, *OBJECTS[::-1]]):
        entry = _entry("tmpl", oid, 1795808414609 + n, 1, None, n)
        for event in entry.events:
            got = encode.build_dispatch(entry, event, 0, payload_format=fmt)
            assert got.body == _expected(entry, event, 0, fmt, got), (oid, event.index)
