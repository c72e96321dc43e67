"""Coalescing in the worker (a real Redis, a memory publisher): the updates of one
(object, field) within ``oprc.coalesce_ms`` go out as one trigger (the last update's own,
with the first old value under ``oprc.include_old``), in the order of the first updates; a
DELETE ends the window; a window is measured by write time; a condition decides per update;
a worker stopped before acknowledging leaves the same trigger (id and bytes)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from oprc_redis_events import ObjectStore, Settings, TriggerTarget
from oprc_redis_events.pb.oprc_data_pb2 import ObjectEvent
from oprc_redis_events.protocol.decode import ReceivedTrigger, decode_trigger
from oprc_redis_events.protocol.encode import invocation_id
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher

from .helpers import RefusingPublisher, dead_letter_reasons, pending_while_running

OUTBOX = "oprc:{orders:0}:outbox"


def _config(**options: str) -> ObjectEvent:
    """Fields a and b: target co (coalesced updates, its deletes as usual), target each."""
    ev = ObjectEvent()
    for name in ("a", "b"):
        trigger = ev.data_trigger_str[name]
        target = TriggerTarget(cls_id="svc", fn_id="co", req_options=options)
        trigger.on_update.append(target)
        trigger.on_delete.append(target)
        trigger.on_update.append(TriggerTarget(cls_id="svc", fn_id="each"))
    return ev


def _triggers(sent: list[tuple[str, bytes]], fn: str = "co") -> list[ReceivedTrigger]:
    return [decode_trigger(k, b) for k, b in sent if fn in k.split("/")]


def _shown(t: ReceivedTrigger) -> tuple[int, str, bytes | None]:
    """(event type, field, new value) of a trigger."""
    p = t.payload
    value = p.original_payload if p.HasField("original_payload") else None
    return p.event_info.event_type, p.event_info.key_str, value


def _burst(settings: Settings) -> tuple[MemoryPublisher, Any]:
    publisher = MemoryPublisher()
    stats = asyncio.run(Worker(settings, publisher=publisher).run_async(burst=True))
    return publisher, stats


def test_updates_within_the_window_go_out_as_the_last_one(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    opts = {"oprc.coalesce_ms": "1000", "oprc.include_old": "true", "k": "v"}
    store.create("orders", 0, 1, {"a": b"0", "b": b"0"}, event=_config(**opts))
    for n in range(1, 6):  # a then b: interleaved
        store.update("orders", 0, 1, {"a": b"%d" % n})
        store.update("orders", 0, 1, {"b": b"%d" % n})
    publisher, stats = _burst(settings)
    got = _triggers(publisher.sent)
    assert [_shown(t) for t in got] == [(4, "a", b"5"), (4, "b", b"5")]  # first updates' order
    assert [t.payload.previous_payload for t in got] == [b"0", b"0"]  # the first old values
    each = _triggers(publisher.sent, "each")
    assert [_shown(t)[2] for t in each] == [b"%d" % (n // 2 + 1) for n in range(10)]
    for t, last in zip(got, each[-2:], strict=True):  # the last update's own trigger
        context = t.payload.event_info.context
        assert context["event_id"] == last.payload.event_info.context["event_id"]
        assert t.invocation_id == invocation_id(context["event_id"], 0)
        assert t.payload.event_info.timestamp == last.payload.event_info.timestamp
        assert dict(t.request.options)["k"] == "v"
        assert not [k for k in t.request.options if k.startswith("oprc.")]
    assert stats.updates_coalesced == 8 and stats.triggers_sent == 12
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 0


def test_a_delete_ends_the_window_and_goes_out_after_it(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    store.create(
        "orders", 0, 1, {"a": b"0", "b": b"0"}, event=_config(**{"oprc.coalesce_ms": "1000"})
    )
    store.update("orders", 0, 1, {"b": b"1"})
    for n in range(1, 4):
        store.update("orders", 0, 1, {"a": b"%d" % n})
    store.delete_field("orders", 0, 1, "a")
    store.update("orders", 0, 1, {"b": b"2"})
    publisher, _ = _burst(settings)
    # b's window opened first: it goes out before a's, which the delete ended
    assert [_shown(t) for t in _triggers(publisher.sent)] == [
        (4, "b", b"1"),
        (4, "a", b"3"),
        (5, "a", None),  # the delete's own trigger, as usual, after the coalesced update
        (4, "b", b"2"),
    ]
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 0


def test_a_window_is_measured_by_write_time_and_a_condition_decides_per_update(
    settings: Settings, store: ObjectStore
) -> None:
    opts = {"oprc.coalesce_ms": "600", "oprc.when": 'new != "skip"', "oprc.include_old": "true"}
    store.create("orders", 0, 1, {"a": b"0"}, event=_config(**opts))
    store.update("orders", 0, 1, {"a": b"skip"})
    store.update("orders", 0, 1, {"a": b"1"})
    store.update("orders", 0, 1, {"a": b"2"})
    store.update("orders", 0, 1, {"a": b"skip"})
    time.sleep(0.7)  # written after the window: the next one
    store.update("orders", 0, 1, {"a": b"3"})
    publisher, stats = _burst(settings)
    got = _triggers(publisher.sent)
    assert [_shown(t)[2] for t in got] == [b"2", b"3"]
    assert [t.payload.previous_payload for t in got] == [b"skip", b"skip"]
    assert stats.condition_skips == 2 and stats.updates_coalesced == 1


def test_entries_stay_pending_while_their_window_is_open(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    store.create("orders", 0, 1, {"a": b"0"}, event=_config(**{"oprc.coalesce_ms": "60000"}))
    store.update("orders", 0, 1, {"a": b"1"})
    store.update("orders", 0, 1, {"a": b"2"})
    publisher = MemoryPublisher()
    worker = Worker(settings.replace(ack_delay_ms=0), publisher=publisher)
    assert (
        pending_while_running(worker, publisher.sent, client, OUTBOX, 2) == 2
    )  # held by the open window (a minute long)
    assert _triggers(publisher.sent) == []  # a stopped worker does not cut a window short
    assert len(_triggers(publisher.sent, "each")) == 2


def test_a_worker_stopped_before_acknowledging_leaves_the_same_trigger(
    settings: Settings, store: ObjectStore, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = {"oprc.coalesce_ms": "1000", "oprc.include_old": "true"}
    store.create("orders", 0, 1, {"a": b"0", "b": b"0"}, event=_config(**opts))
    for n in range(1, 4):
        store.update("orders", 0, 1, {"a": b"%d" % n})
        store.update("orders", 0, 1, {"b": b"%d" % n})

    class Crashing(MemoryPublisher):
        worker: Worker

        def put(self, key: str, payload: bytes) -> None:
            super().put(key, payload)
            if _triggers(self.sent):
                self.worker.stop()  # then "killed": nothing acknowledged

    crashing = Crashing()
    crashed = Worker(settings.replace(consumer="w1", claim_idle_ms=500), publisher=crashing)
    crashing.worker = crashed
    never: Any = lambda *_args, **_kw: []  # noqa: E731
    monkeypatch.setattr(crashed.acks, "take", never)
    asyncio.run(crashed.run_async(burst=True))
    first = [(k, b) for k, b in crashing.sent if "/co/" in k]
    assert first  # the windows that closed together may both have gone out
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 6  # the six updates

    time.sleep(0.6)  # the entries must be idle for claim_idle_ms
    rescued = MemoryPublisher()
    rescuer = Worker(settings.replace(consumer="w2", claim_idle_ms=500), publisher=rescued)
    asyncio.run(rescuer.run_async(burst=True))
    again = [(k, b) for k, b in rescued.sent if "/co/" in k]
    assert again[: len(first)] == first  # the same keys (invocation ids) and bytes
    assert [_shown(t)[1:] for t in _triggers(rescued.sent)] == [("a", b"3"), ("b", b"3")]
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 0


def test_a_coalesced_trigger_that_keeps_failing_dead_letters_its_entries(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    store.create("orders", 0, 1, {"a": b"0"}, event=_config(**{"oprc.coalesce_ms": "20"}))
    store.update("orders", 0, 1, {"a": b"1"})
    store.update("orders", 0, 1, {"a": b"2"})

    publisher = RefusingPublisher("co")
    worker = Worker(settings.replace(max_deliveries=2, retry_base_ms=1), publisher=publisher)
    stats = asyncio.run(worker.run_async(burst=True))
    reasons = dead_letter_reasons(client, PartitionKeys.of("orders", 0))
    assert len(reasons) == 2 and all(r.startswith("coalesce: ") for r in reasons), reasons
    assert stats.dead_letters == 2 and stats.updates_coalesced == 0
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 0


def test_the_cli_sets_coalesce_ms_and_bad_values_are_refused(
    store: ObjectStore, redis_url: str
) -> None:
    from click.testing import CliRunner

    from oprc_redis_events.cli.main import main

    store.create("orders", 0, 4, {"status": b"a"})
    runner = CliRunner()
    base = ["triggers", "add", "orders", "0", "4", "--redis-url", redis_url, "on_update", "status"]
    added = runner.invoke(main, [*base, "billing/0/sum", "--coalesce-ms", "250"])
    assert added.exit_code == 0, added.output
    [target] = store.get_triggers("orders", 0, 4).data_trigger_str["status"].on_update
    assert dict(target.req_options) == {"oprc.coalesce_ms": "250"}
    for value in ("0", "60001", "x"):
        bad = runner.invoke(main, [*base, "billing/0/x", "--coalesce-ms", value])
        assert bad.exit_code == 2 and "--coalesce-ms" in bad.output, bad.output
    both = runner.invoke(main, [*base, "billing/0/x", "--coalesce-ms", "5", "--batch-ms", "5"])
    assert both.exit_code == 1 and both.output.startswith("Error: "), both.output
    assert "oprc.coalesce_ms" in both.output and "oprc.batch_ms" in both.output
    assert "billing.x" in both.output
    forged = runner.invoke(main, [*base, "billing/0/x", "--option", "oprc.coalesce_ms=soon"])
    assert forged.exit_code == 1 and "oprc.coalesce_ms='soon'" in forged.output
    explained = runner.invoke(
        main, ["explain", "orders", "0", "4", "--redis-url", redis_url, "status=b"]
    )
    assert explained.exit_code == 0, explained.output
    assert "coalesced: the updates of this field within 250 ms" in explained.output
    batched = runner.invoke(main, [*base, "billing/0/bulk", "--batch-max", "9", "--batch-ms", "70"])
    assert batched.exit_code == 0, batched.output
    explained = runner.invoke(
        main, ["explain", "orders", "0", "4", "--redis-url", redis_url, "status=c"]
    )
    verdict = "dispatched; batched: one invocation carries up to 9 triggers or those gathered"
    assert f"on_update; {verdict} within 70 ms of the first)" in explained.output
    removed = runner.invoke(
        main, ["triggers", "remove", *base[2:], "billing/0/sum", "--coalesce-ms", "250"]
    )
    assert removed.exit_code == 0, removed.output
