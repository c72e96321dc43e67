"""Coalescing, the pure parts: ``oprc.coalesce_ms`` checked when triggers are set (and
refused beside batching), which triggers coalesce, the windows' bookkeeping (per target,
object and field; measured by write time; in the order of their first update; ended by a
CREATE or DELETE), and the one trigger a window sends."""

from __future__ import annotations

import time

import pytest

from oprc_redis_events.errors import InvalidTriggerError
from oprc_redis_events.pb.oprc_data_pb2 import ObjectEvent
from oprc_redis_events.pb.oprc_invoke_pb2 import InvocationRequest
from oprc_redis_events.protocol.decode import decode_trigger
from oprc_redis_events.protocol.encode import Dispatch, build_dispatch
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.outbox import OutboxEntry, OutboxEvent
from oprc_redis_events.protocol.triggers import Target, coerce_event
from oprc_redis_events.worker.batches import Batches, OpenBatch
from oprc_redis_events.worker.coalescing import coalesced, coalesced_dispatch, cuts
from oprc_redis_events.worker.dispatch import Plan

from .helpers import one_target

pytestmark = pytest.mark.quick

CO = Target("svc", 0, None, None, "f", {"oprc.coalesce_ms": "50", "oprc.include_old": "true"})
PLAIN = Target("svc", 0, None, None, "g", {})
PARTITION = PartitionKeys.of("orders", 0)
NOW_MS = int(time.time() * 1000)


def _plan(n: int, field: str = "status", oid: str = "7", kind: int = 4, at: int = 0) -> Plan:
    """Entry ``n-0``: one event of ``kind`` on ``oid``.``field``, value ``v<n>``, old
    ``o<n>``, written at ``NOW_MS + at``; its dispatches to CO and PLAIN."""
    value = None if kind == 5 else b"v%d" % n
    old = None if kind == 3 else b"o%d" % n
    event = OutboxEvent(1, kind, field, value, [CO, PLAIN], old)
    entry = OutboxEntry(PARTITION, f"{n}-0", oid, 0, 0, NOW_MS + at, None, [event])
    return Plan(entry.entry_id, {}, entry, [build_dispatch(entry, event, i) for i in (0, 1)])


def _add(batches: Batches, plans: list[Plan], now: float = 100.0) -> list[OpenBatch]:
    closed: list[OpenBatch] = []
    for plan in plans:
        for d in plan.dispatches:
            if coalesced(d):
                closed += batches.add(PARTITION, plan, d, now)
    return closed


@pytest.mark.parametrize("value", ["0", "-1", "2.5", "x", "60001", " 5", "٣", ""])
def test_a_bad_coalesce_ms_is_refused_naming_the_option_and_the_target(value: str) -> None:
    with pytest.raises(InvalidTriggerError) as err:
        coerce_event(one_target(**{"oprc.coalesce_ms": value}))
    text = str(err.value)
    assert "oprc.coalesce_ms" in text and "billing.sum" in text and repr(value) in text
    assert "on_update[0]" in text


@pytest.mark.parametrize("batch", ["oprc.batch_max", "oprc.batch_ms"])
def test_coalescing_and_batching_are_refused_together(batch: str) -> None:
    with pytest.raises(InvalidTriggerError) as err:
        coerce_event(one_target(**{"oprc.coalesce_ms": "100", batch: "5"}))
    text = str(err.value)
    assert "oprc.coalesce_ms" in text and batch in text and "billing.sum" in text


def test_good_coalesce_ms_values_are_accepted_in_any_slot() -> None:
    for value in ("1", "250", "60000"):
        coerce_event(one_target(**{"oprc.coalesce_ms": value, "oprc.include_old": "true"}))
    ev = ObjectEvent()
    for slot in ("on_create", "on_delete"):
        t = getattr(ev.data_trigger[1], slot).add()
        t.cls_id, t.fn_id = "billing", "sum"
        t.req_options["oprc.coalesce_ms"] = "100"
    coerce_event(ev)  # delivered as usual there


def test_only_updates_of_a_coalescing_target_coalesce() -> None:
    update, others = _plan(1), [_plan(2, kind=3), _plan(3, kind=5), _plan(4, kind=1)]
    assert [coalesced(d) for d in update.dispatches] == [True, False]
    assert not any(coalesced(d) for p in others for d in p.dispatches)  # as usual
    assert update.dispatches[0].payload is None  # a plain trigger, not a batch member


def test_windows_per_object_and_field_go_out_in_the_order_of_their_first_update() -> None:
    batches = Batches()
    plans = [
        _plan(1, "a"),
        _plan(2, "b"),
        _plan(3, "a", oid="8"),
        _plan(4, "a"),
        _plan(5, "b"),
    ]
    assert _add(batches, plans) == []
    stream = PARTITION.outbox
    assert batches.coalescing(stream) == {("7", "a"), ("7", "b"), ("8", "a")}
    assert all(batches.holds(stream, p.entry_id) for p in plans)
    closed = batches.end(stream, [("7", "b")])  # closes the target's windows before it too
    assert [[p.entry_id for p in w.plans] for w in closed] == [["1-0", "4-0"], ["2-0", "5-0"]]
    assert batches.coalescing(stream) == {("8", "a")}
    assert batches.sent(closed[0]) == (["1-0", "4-0"], [])
    assert batches.holds(stream, "3-0") and not batches.holds(stream, "1-0")


def test_a_window_is_measured_from_its_first_update_write() -> None:
    batches = Batches()
    base = int(time.time() * 1000) - NOW_MS  # written now: the open window is not over
    offsets = [0, 20, 49, 50, 60]
    plans = [_plan(n, at=base + at) for n, at in enumerate(offsets, 1)]
    closed = _add(batches, plans, now=100.0)
    assert [[p.entry_id for p in w.plans] for w in closed] == [["1-0", "2-0", "3-0"]]
    due = batches.next_due()
    assert due is not None and 100.0 < due <= 100.05  # the open one: by the worker's clock
    [late] = batches.due(due)
    assert [p.entry_id for p in late.plans] == ["4-0", "5-0"]


def test_a_create_or_delete_cuts_the_read_before_it() -> None:
    plans = [_plan(1, "a"), _plan(2, "b"), _plan(3, "a", kind=5), _plan(4, "c", kind=3)]
    plans.append(_plan(5, "a", kind=3))
    diverted = [[d for d in p.dispatches if coalesced(d)] for p in plans]
    assert cuts(plans, diverted, set()) == [(2, [("7", "a")])]  # no window of c; a's ended
    assert cuts(plans, diverted, {("7", "c")}) == [(2, [("7", "a")]), (3, [("7", "c")])]
    assert cuts(plans[2:], diverted[2:], set()) == []


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_a_window_sends_its_last_update_with_the_first_old_value(fmt: str) -> None:
    plans = [_plan(n) for n in (1, 2, 3)]
    for p in plans:
        e = p.entry
        p.dispatches = [build_dispatch(e, e.events[0], i, payload_format=fmt) for i in (0, 1)]
    members = [p.dispatches[0] for p in plans]
    d: Dispatch = coalesced_dispatch(members, plans, fmt, "put")
    last = members[-1]
    assert (d.key, d.invocation_id, d.event_id) == (last.key, last.invocation_id, last.event_id)
    got = decode_trigger(d.key, d.body)
    assert got.payload.original_payload == b"v3" and got.payload.previous_payload == b"o1"
    assert not [k for k in InvocationRequest.FromString(d.body).options if k.startswith("oprc.")]
    assert coalesced_dispatch(members, plans, fmt, "put").body == d.body  # stable
    assert coalesced_dispatch(members[2:], plans[2:], fmt, "put") is last  # alone: as is
    plain = Target("svc", 0, None, None, "f", {"oprc.coalesce_ms": "50"})
    entry = plans[2].entry
    event = OutboxEvent(1, 4, "status", b"v3", [plain], b"o3")
    mine = build_dispatch(entry, event, 0, payload_format=fmt)
    assert coalesced_dispatch([members[0], mine], plans[1:], fmt, "put") is mine


def test_the_cli_builds_coalesce_ms() -> None:
    import click

    from oprc_redis_events.cli.trigger_options import target_options

    assert target_options((), None, True, coalesce_ms=250) == {
        "oprc.include_old": "true",
        "oprc.coalesce_ms": "250",
    }
    with pytest.raises(click.UsageError, match="--coalesce-ms"):
        target_options(("oprc.coalesce_ms=5",), None, False, coalesce_ms=250)


def test_windows_closed_by_the_clock_go_out_in_the_order_they_opened() -> None:
    """Two windows opened in the same millisecond may be due in either order: the one
    opened first goes out first (and a due window takes its target's earlier ones along)."""
    batches = Batches()
    _add(batches, [_plan(1, "a"), _plan(2, "b"), _plan(3, "c")])
    a, b, c = batches.open.values()
    a.due, b.due, c.due = 5.0, 1.0, 9.0
    closed = batches.due(2.0)
    assert [w.plans[0].entry_id for w in closed] == ["1-0", "2-0"]
    assert list(batches.open.values()) == [c]
