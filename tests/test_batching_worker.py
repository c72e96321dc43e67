"""Batched delivery in the worker (a real Redis, a memory publisher): sizes, windows,
order, entries held unacknowledged until their batch went out, and a worker stopped before
acknowledging: the next one forms the same batches, with the same invocation ids."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from oprc_redis_events import ObjectStore, Settings, TriggerTarget
from oprc_redis_events.pb.oprc_data_pb2 import ObjectEvent
from oprc_redis_events.protocol.decode import decode_batch, decode_trigger
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher

from .helpers import RefusingPublisher, dead_letter_reasons, pending_while_running

OUTBOX = "oprc:{orders:0}:outbox"


def _config(**options: str) -> ObjectEvent:
    ev = ObjectEvent()
    updates = ev.data_trigger[1].on_update
    updates.append(TriggerTarget(cls_id="svc", fn_id="sum", req_options=options))
    updates.append(TriggerTarget(cls_id="svc", fn_id="each"))
    return ev


def _write(store: ObjectStore, count: int, **options: str) -> None:
    store.create("orders", 0, 1, {1: b"0"}, event=_config(**options))
    for n in range(1, count + 1):
        store.update("orders", 0, 1, {1: b"%d" % n})


def _batches(sent: list[tuple[str, bytes]]) -> list[tuple[str, list[bytes]]]:
    """(invocation id, the values it carries) of each batch sent."""
    found = []
    for key, body in sent:
        if "sum" in key.split("/"):
            batch = decode_batch(key, body)
            found.append((batch.invocation_id, [t.original_payload for t in batch.triggers]))
    return found


def test_sizes_window_and_order(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    _write(store, 7, **{"oprc.batch_max": "3", "oprc.batch_ms": "1000"})
    publisher = MemoryPublisher()
    stats = asyncio.run(Worker(settings, publisher=publisher).run_async(burst=True))
    got = _batches(publisher.sent)
    assert [values for _, values in got] == [
        [b"1", b"2", b"3"],
        [b"4", b"5", b"6"],
        [b"7"],  # sent when its window ended
    ]
    each = [
        decode_trigger(k, b).payload.original_payload for k, b in publisher.sent if "/each/" in k
    ]
    assert each == [b"%d" % n for n in range(1, 8)]  # the other target: one by one
    assert stats.batches_sent == 3 and stats.triggers_sent == 14
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 0


def test_entries_stay_pending_until_their_batch_went_out(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    _write(store, 2, **{"oprc.batch_ms": "60000"})
    publisher = MemoryPublisher()
    worker = Worker(settings.replace(ack_delay_ms=0), publisher=publisher)
    assert (
        pending_while_running(worker, publisher.sent, client, OUTBOX, 2) == 2
    )  # held by the open batch (its window is a minute)
    assert _batches(publisher.sent) == []  # a stopped worker does not cut a window short
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 2


def test_a_worker_stopped_before_acknowledging_leaves_the_same_batches(
    settings: Settings, store: ObjectStore, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(store, 7, **{"oprc.batch_max": "3", "oprc.batch_ms": "1000"})

    class Crashing(MemoryPublisher):
        worker: Worker

        def put(self, key: str, payload: bytes) -> None:
            super().put(key, payload)
            if len(_batches(self.sent)) == 2:
                self.worker.stop()  # then "killed": nothing acknowledged

    crashing = Crashing()
    crashed = Worker(settings.replace(consumer="w1", claim_idle_ms=500), publisher=crashing)
    crashing.worker = crashed
    never: Any = lambda *_args, **_kw: []  # noqa: E731
    monkeypatch.setattr(crashed.acks, "take", never)
    asyncio.run(crashed.run_async(burst=True))
    first = _batches(crashing.sent)
    assert [len(values) for _, values in first] == [3, 3]
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 7

    time.sleep(0.6)  # the entries must be idle for claim_idle_ms
    rescued = MemoryPublisher()
    rescuer = Worker(settings.replace(consumer="w2", claim_idle_ms=500), publisher=rescued)
    asyncio.run(rescuer.run_async(burst=True))
    again = _batches(rescued.sent)
    assert again[:2] == first  # the same invocation ids and triggers
    assert [key for key, _ in rescued.sent if "/sum/" in key][:2] == [
        key for key, _ in crashing.sent if "/sum/" in key
    ]
    assert [values for _, values in again[2:]] == [[b"7"]]
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 0


def test_the_cli_sets_batch_options_and_refuses_bad_ones(
    store: ObjectStore, redis_url: str
) -> None:
    from click.testing import CliRunner

    from oprc_redis_events.cli.main import main

    store.create("orders", 0, 4, {"status": b"a"})
    runner = CliRunner()
    base = ["triggers", "add", "orders", "0", "4", "--redis-url", redis_url, "on_update", "status"]
    added = runner.invoke(main, [*base, "billing/0/sum", "--batch-max", "50", "--batch-ms", "200"])
    assert added.exit_code == 0, added.output
    [target] = store.get_triggers("orders", 0, 4).data_trigger_str["status"].on_update
    assert dict(target.req_options) == {"oprc.batch_max": "50", "oprc.batch_ms": "200"}
    for flag, value in (("--batch-max", "0"), ("--batch-max", "10001"), ("--batch-ms", "60001")):
        bad = runner.invoke(main, [*base, "billing/0/x", flag, value])
        assert bad.exit_code == 2 and flag in bad.output, bad.output
    twice = runner.invoke(
        main, [*base, "billing/0/x", "--batch-max", "2", "--option", "oprc.batch_max=3"]
    )
    assert twice.exit_code != 0 and "oprc.batch_max" in twice.output
    forged = runner.invoke(main, [*base, "billing/0/x", "--option", "oprc.batch_ms=soon"])
    assert forged.exit_code == 1 and "Error: " in forged.output
    assert "oprc.batch_ms" in forged.output and "billing.x" in forged.output
    removed = runner.invoke(
        main,
        [
            "triggers",
            "remove",
            *base[2:],
            "billing/0/sum",
            "--batch-max",
            "50",
            "--batch-ms",
            "200",
        ],
    )
    assert removed.exit_code == 0, removed.output


def test_invoke_delivery_sends_one_get_per_batch_and_retries_it_whole(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    from oprc_redis_events.client.invoke import InvokeResult
    from oprc_redis_events.pb.oprc_invoke_pb2 import InvocationResponse, ResponseStatus

    _write(store, 4, **{"oprc.batch_max": "2", "oprc.delivery": "invoke"})
    publisher = MemoryPublisher()
    answers = iter([False, True, True])

    def responder(key: str, body: bytes) -> InvokeResult:
        answered = next(answers, True)
        return InvokeResult(InvocationResponse(status=ResponseStatus.OKAY), answered)

    publisher.responder = responder
    worker = Worker(settings.replace(retry_base_ms=1), publisher=publisher)
    stats = asyncio.run(worker.run_async(burst=True))
    got = _batches(publisher.invoked)
    assert [values for _, values in got] == [[b"1", b"2"], [b"1", b"2"], [b"3", b"4"]]
    assert got[0][0] == got[1][0]  # the retry: the same batch, the same id
    assert "/invokes/sum" in publisher.invoked[0][0]
    assert stats.batches_sent == 2 and stats.retries == 1
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 0


def test_a_window_longer_than_claim_idle_ms_is_not_claimed_away(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    _write(store, 3, **{"oprc.batch_ms": "2000"})
    publisher = MemoryPublisher()
    worker = Worker(settings.replace(claim_idle_ms=500), publisher=publisher, block_ms=20)

    async def run() -> None:
        task = asyncio.ensure_future(worker.run_async())
        deadline = time.monotonic() + 10
        while not _batches(publisher.sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # its acknowledgement
        worker.stop()
        await task

    asyncio.run(run())
    assert [values for _, values in _batches(publisher.sent)] == [[b"1", b"2", b"3"]]
    assert worker.stats.claimed == 0 and worker.stats.batches_sent == 1
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 0


def test_a_batch_that_keeps_failing_dead_letters_its_entries(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    _write(store, 3, **{"oprc.batch_max": "2"})

    publisher = RefusingPublisher("sum")
    worker = Worker(settings.replace(max_deliveries=2, retry_base_ms=1), publisher=publisher)
    stats = asyncio.run(worker.run_async(burst=True))
    reasons = dead_letter_reasons(client, PartitionKeys.of("orders", 0))
    assert len(reasons) == 3 and all(r.startswith("batch: ") for r in reasons), reasons
    assert stats.dead_letters == 3 and stats.batches_sent == 0
    # the unbatched target got each trigger, some again when a batch's entries were read
    # again (at least once), with the same invocation id
    assert len({key for key, _ in publisher.sent}) == 3
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 0


def test_a_forged_target_of_a_held_entry_is_dead_lettered_after_its_batch(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    """Writing a dead letter acknowledges its entry: for an entry held by an open batch,
    the letter of its forged target waits for the batch (else a crash would lose it)."""
    from oprc_redis_events.protocol.triggers import Target, encode_targets

    batched = TriggerTarget(cls_id="svc", fn_id="sum", req_options={"oprc.batch_max": "2"})
    ev = ObjectEvent()
    ev.data_trigger[1].on_create.append(batched)
    store.create("orders", 0, 1, {1: b"a"}, event=ev)
    [(first_id, fields)] = client.xrange(OUTBOX)
    client.xdel(OUTBOX, first_id)
    good = Target("svc", 0, None, None, "sum", {"oprc.batch_max": "2"})
    forged = Target("svc", 0, None, None, "**", {})
    client.xadd(OUTBOX, {**fields, b"t1": encode_targets([good, forged])})  # type: ignore[arg-type]
    publisher = MemoryPublisher()
    worker = Worker(settings, publisher=publisher)

    async def first_turn() -> None:
        task = asyncio.ensure_future(worker.run_async())
        deadline = time.monotonic() + 10
        while not worker.stats.forged_targets and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        worker.stop()
        await task

    asyncio.run(first_turn())
    assert worker.stats.forged_targets == 1 and not client.xlen("oprc:{orders:0}:dlq")
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 1  # held: not acknowledged
    client.xadd(OUTBOX, {**fields, b"t1": encode_targets([good])})  # type: ignore[arg-type]
    stats = asyncio.run(Worker(settings, publisher=publisher).run_async(burst=True))
    assert [len(values) for _, values in _batches(publisher.sent)] == [2]
    assert stats.dead_letters == 1 and client.xlen("oprc:{orders:0}:dlq") == 1
    assert client.xpending(OUTBOX, "oprc-events")["pending"] == 0
