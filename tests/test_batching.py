"""Batched delivery, the pure parts: ``oprc.batch_max`` / ``oprc.batch_ms`` checked when
triggers are set, the ``TriggerBatch`` payload (each element exactly the payload the target
would get alone), the batch's invocation id, the open batches' bookkeeping."""

from __future__ import annotations

import json
import time

import pytest

from oprc_redis_events.errors import InvalidTriggerError
from oprc_redis_events.pb.oprc_data_pb2 import TriggerBatch, TriggerPayload
from oprc_redis_events.pb.oprc_invoke_pb2 import InvocationRequest
from oprc_redis_events.protocol.batch_wire import batch_dispatch
from oprc_redis_events.protocol.decode import decode_batch, parse_trigger_batch
from oprc_redis_events.protocol.encode import Dispatch, build_dispatch
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.outbox import OutboxEntry, OutboxEvent
from oprc_redis_events.protocol.triggers import Target, coerce_event
from oprc_redis_events.worker.batches import Batches
from oprc_redis_events.worker.dispatch import Plan

from .helpers import one_target

pytestmark = pytest.mark.quick

BATCHED = Target("svc", 0, None, None, "f", {"oprc.batch_max": "3", "oprc.batch_ms": "50"})
PLAIN = Target("svc", 0, None, None, "g", {})
PARTITION = PartitionKeys.of("orders", 0)


def _entry(n: int, targets: list[Target] | None = None) -> OutboxEntry:
    event = OutboxEvent(0, 4, "status", b"v%d" % n, targets or [BATCHED, PLAIN], b"old")
    return OutboxEntry(PARTITION, f"{n}-0", "7", 0, 0, 1000 + n, None, [event])


def _dispatch(n: int, fmt: str = "json", index: int = 0) -> Dispatch:
    entry = _entry(n)
    return build_dispatch(entry, entry.events[0], index, payload_format=fmt)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("oprc.batch_max", "0"),
        ("oprc.batch_max", "-1"),
        ("oprc.batch_max", "3.5"),
        ("oprc.batch_max", "x"),
        ("oprc.batch_max", "10001"),
        ("oprc.batch_ms", "0"),
        ("oprc.batch_ms", "60001"),
        ("oprc.batch_ms", " 5"),
        ("oprc.batch_ms", "٣"),
    ],
)
def test_bad_batch_options_are_refused_naming_the_option_and_the_target(
    option: str, value: str
) -> None:
    with pytest.raises(InvalidTriggerError) as err:
        coerce_event(one_target(**{option: value}))
    text = str(err.value)
    assert option in text and "billing.sum" in text and repr(value) in text


def test_good_batch_options_are_accepted() -> None:
    coerce_event(one_target(**{"oprc.batch_max": "10000", "oprc.batch_ms": "60000"}))
    coerce_event(one_target(**{"oprc.batch_max": "1"}))
    coerce_event(one_target(**{"oprc.batch_ms": "1"}))


def test_only_batched_targets_keep_their_payload_and_unbatched_bytes_are_unchanged() -> None:
    batched, plain = _dispatch(1, index=0), _dispatch(1, index=1)
    assert batched.payload is not None and plain.payload is None
    inner = InvocationRequest.FromString(batched.body).payload
    assert inner == batched.payload  # the payload the target would get alone


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_a_batch_holds_each_payload_exactly_in_order(fmt: str) -> None:
    members = [_dispatch(n, fmt) for n in (1, 2, 3)]
    d = batch_dispatch(members, fmt)
    request = InvocationRequest.FromString(d.body)
    assert d.key == f"oprc/svc/0/async/f/{d.invocation_id}"
    assert request.options["invocation_id"] == d.invocation_id
    assert not [k for k in request.options if k.startswith("oprc.")]
    if fmt == "json":
        doc = json.loads(request.payload)
        assert list(doc) == ["triggers"]
        assert (
            request.payload
            == b'{"triggers":[' + b",".join(m.payload or b"" for m in members) + b"]}"
        )
    else:
        whole = TriggerBatch(
            triggers=[TriggerPayload.FromString(m.payload or b"") for m in members]
        )
        assert request.payload == whole.SerializeToString(deterministic=True)
    got = parse_trigger_batch(request.payload)
    assert [t.original_payload for t in got] == [b"v1", b"v2", b"v3"]
    assert decode_batch(d.key, d.body).triggers == got


def test_the_batch_id_depends_on_its_first_last_and_size_only() -> None:
    a = batch_dispatch([_dispatch(n) for n in (1, 2, 3)], "json")
    again = batch_dispatch([_dispatch(n) for n in (1, 2, 3)], "json")
    shorter = batch_dispatch([_dispatch(n) for n in (1, 2)], "json")
    assert a.invocation_id == again.invocation_id and a.body == again.body
    assert shorter.invocation_id != a.invocation_id
    assert a.invocation_id not in {_dispatch(n).invocation_id for n in (1, 2, 3)}


def test_open_batches_close_when_full_or_due_and_free_their_entries() -> None:
    batches = Batches()
    closed = []
    for n in range(1, 8):
        entry = _entry(n)
        plan = Plan(entry.entry_id, {}, entry, [])
        closed += batches.add(PARTITION, plan, _dispatch(n), now=10.0 + n / 1000)
    assert [len(b.members) for b in closed] == [3, 3]
    assert batches.holds(PARTITION.outbox, "7-0") and batches.holds(PARTITION.outbox, "1-0")
    assert batches.sent(closed[0]) == (["1-0", "2-0", "3-0"], [])
    assert not batches.holds(PARTITION.outbox, "1-0")
    assert batches.due(10.0) == []
    assert batches.next_due() == pytest.approx(10.007)  # written long ago: due at once
    [last] = batches.due(11.0)
    assert [p.entry_id for p in last.plans] == ["7-0"] and not batches.pending()
    assert batches.drop(PARTITION.outbox) == 4  # 4..7 still held: their batches not sent


def test_a_window_is_measured_from_the_writes() -> None:
    """A trigger written after its batch's window starts the next batch, whenever it is
    read; the window of a fresh write ends batch_ms after it (by the worker's clock)."""
    batches = Batches()
    now_ms = int(time.time() * 1000)
    closed = []
    for n, written in enumerate([now_ms, now_ms + 20, now_ms + 49, now_ms + 50, now_ms + 60]):
        event = OutboxEvent(0, 4, "status", b"v%d" % n, [BATCHED], None)
        entry = OutboxEntry(PARTITION, f"{n}-0", "7", 0, 0, written, None, [event])
        d = build_dispatch(entry, event, 0)
        closed += batches.add(PARTITION, Plan(entry.entry_id, {}, entry, [d]), d, now=100.0)
    assert [len(b.members) for b in closed] == [3]  # 0, 20, 49 ms; 50 ms is the next one's
    due = batches.next_due()
    assert due is not None and 100.0 < due <= 100.05


def test_tail_shows_each_trigger_of_a_json_batch() -> None:
    from oprc_redis_events.cli.tail import received

    d = batch_dispatch([_dispatch(n, "json") for n in (1, 2, 3)], "json")
    got = received(d.key, d.body)
    assert [t.payload.original_payload for t in got] == [b"v1", b"v2", b"v3"]
    assert {t.invocation_id for t in got} == {d.invocation_id}
    single = _dispatch(1, "json")
    assert len(received(single.key, single.body)) == 1
