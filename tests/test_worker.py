"""The worker end to end: real Redis, real Zenoh sessions on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
import redis

from oprc_redis_events import (
    InvocationRequest,
    ObjectEvent,
    ObjectInvocationRequest,
    ObjectStore,
    Settings,
    TriggerPayload,
    TriggerTarget,
)
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher, ZenohPublisher

from .conftest import ZenohHub
from .helpers import RunningWorker, watch_all


@pytest.fixture
def start_worker(settings: Settings, zenoh_hub: ZenohHub) -> Iterator:  # type: ignore[type-arg]
    running: list[RunningWorker] = []

    def start(**kw: object) -> Worker:
        session = zenoh_hub.session()
        config = settings.replace(
            **{k: v for k, v in kw.items() if k in Settings.__dataclass_fields__}
        )
        options = {k: v for k, v in kw.items() if k not in Settings.__dataclass_fields__}
        worker = Worker(
            config,
            publisher=ZenohPublisher(session),
            block_ms=50,
            discover_interval=0.05,
            **options,
        )  # type: ignore[arg-type]
        running.append(RunningWorker(worker))
        return worker

    yield start
    for r in running:
        r.stop()


def notify_config() -> ObjectEvent:
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.append(
        TriggerTarget(
            cls_id="notification_service",
            partition_id=0,
            fn_id="send_notification",
            req_options={"channel": "email"},
        )
    )
    ev.data_trigger[42].on_update.append(
        TriggerTarget(cls_id="audit", partition_id=2, object_id=77, fn_id="record")
    )
    ev.data_trigger_str["name"].on_create.append(
        TriggerTarget(cls_id="audit", partition_id=2, object_id_str="log-1", fn_id="record")
    )
    return ev


def test_update_becomes_zenoh_puts(store: ObjectStore, zenoh_hub: ZenohHub, start_worker) -> None:  # type: ignore[no-untyped-def]
    inbox = zenoh_hub.subscribe()
    start_worker()
    store.create("orders", 0, 1001, {42: b"pending"}, event=notify_config())
    store.update("orders", 0, 1001, {42: b"paid"})
    got = inbox.wait_for(2)
    assert len(got) == 2
    by_fn = {t.request.fn_id: t for t in got}
    stateless, stateful = by_fn["send_notification"], by_fn["record"]
    assert (
        stateless.key
        == f"oprc/notification_service/0/async/send_notification/{stateless.invocation_id}"
    )
    assert stateful.key == f"oprc/audit/2/objects/77/async/record/{stateful.invocation_id}"
    assert isinstance(stateless.request, InvocationRequest)
    assert stateless.request.options["channel"] == "email"
    assert {"depth", "event_id", "invocation_id", "traceparent"} <= set(stateless.request.options)
    assert isinstance(stateful.request, ObjectInvocationRequest)
    assert stateful.request.object_id == 77
    _key, body = next(r for r in inbox.raw if "notification_service" in r[0])
    doc = json.loads(InvocationRequest.FromString(body).payload)
    info = doc["event_info"]
    assert list(doc) == ["event_info", "original_payload"]
    assert list(info) == [
        "source_cls_id",
        "source_partition_id",
        "source_object_id",
        "event_type",
        "fn_id",
        "key",
        "timestamp",
        "context",
    ]
    assert (info["source_cls_id"], info["source_partition_id"], info["source_object_id"]) == (
        "orders",
        0,
        1001,
    )
    assert (info["event_type"], info["fn_id"], info["key"]) == (4, None, 42)
    assert doc["original_payload"] == list(b"paid")
    assert info["context"]["depth"] == "0"
    assert {"event_id", "traceparent"} <= set(info["context"])
    assert b" " not in InvocationRequest.FromString(body).payload  # compact, as serde_json


def test_protobuf_mode_and_string_ids(
    store: ObjectStore, zenoh_hub: ZenohHub, start_worker
) -> None:  # type: ignore[no-untyped-def]
    inbox = zenoh_hub.subscribe()
    start_worker(payload_format="protobuf")
    store.create("orders", 0, "user-1", {"name": b"Ann"}, event=notify_config())
    [got] = inbox.wait_for(1)
    assert got.key == f"oprc/audit/2/objects/log-1/async/record/{got.invocation_id}"
    payload = TriggerPayload.FromString(got.request.payload)
    assert payload.event_info.source_object_id_str == "user-1"
    assert payload.event_info.key_str == "name"
    assert not payload.event_info.HasField("key")
    assert payload.original_payload == b"Ann"
    assert got.payload_format == "protobuf"


def test_odgm_layout(store: ObjectStore, zenoh_hub: ZenohHub, start_worker) -> None:  # type: ignore[no-untyped-def]
    inbox = zenoh_hub.subscribe("oprc/*/*/invokes/*/async/*")
    start_worker(delivery="put-odgm")
    store.create("orders", 0, 1, {42: b"a"}, event=notify_config())
    store.update("orders", 0, 1, {42: b"b"})
    [got] = inbox.wait_for(1)
    assert got.key.startswith("oprc/notification_service/0/invokes/send_notification/async/")


def test_many_triggers_arrive_in_write_order(
    store: ObjectStore, zenoh_hub: ZenohHub, start_worker
) -> None:  # type: ignore[no-untyped-def]
    inbox = zenoh_hub.subscribe()
    store.create("orders", 0, 5, {1: b"0"}, event=watch_all([1]))
    for i in range(1, 2001):
        store.update("orders", 0, 5, {1: str(i).encode()})
    start_worker()
    got = inbox.wait_for(2001, timeout=30)
    assert len(got) == 2001
    values = [int(t.payload.original_payload) for t in got]
    assert values == list(range(2001))
    ids = {t.invocation_id for t in got}
    assert len(ids) == 2001


def test_poison_entries_are_dead_lettered_and_the_partition_keeps_flowing(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    keys = PartitionKeys.of("orders", 0)
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    client.xadd(
        keys.outbox,
        {
            "o": "1",
            "v": "1",
            "d": "0",
            "ts": "1",
            "n": "1",
            "e1": "4",
            "k1": "1",
            "t1": b"\xc1garbage",
        },
    )
    store.update("orders", 0, 1, {1: b"b"})
    client.xadd(keys.outbox, {"o": "1", "n": "not-a-number"})
    store.update("orders", 0, 1, {1: b"c"})
    publisher = MemoryPublisher()
    worker = Worker(settings, publisher=publisher, block_ms=10)
    stats = asyncio.run(worker.run_async(burst=True))
    assert stats.dead_letters == 2
    assert [
        json.loads(InvocationRequest.FromString(b).payload)["original_payload"]
        for _, b in publisher.sent
    ] == [list(b"a"), list(b"b"), list(b"c")]
    dead = client.xrange(keys.dead_letters)
    reasons = [fields[b"dlq:reason"].decode() for _, fields in dead]
    assert "targets of event 1 cannot be decoded" in reasons[0]
    assert "'n' is not an integer" in reasons[1]
    assert dead[1][1][b"n"] == b"not-a-number"  # the original entry is kept
    assert client.xpending(keys.outbox, "oprc-events")["pending"] == 0


def test_invalid_target_written_behind_our_back_is_dead_lettered(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    from oprc_redis_events.protocol.triggers import Target, encode_targets

    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    client.hset(
        "oprc:{orders:0}:meta:1",
        "t:u:1",
        encode_targets([Target("bad/cls", 0, None, None, "f", {})]),
    )
    store.update("orders", 0, 1, {1: b"b"})
    publisher = MemoryPublisher()
    stats = asyncio.run(Worker(settings, publisher=publisher).run_async(burst=True))
    assert stats.dead_letters == 1 and len(publisher.sent) == 1
    [(_, fields)] = client.xrange("oprc:{orders:0}:dlq")
    assert "'bad/cls' contains '/'" in fields[b"dlq:reason"].decode()


def test_depth_limit(settings: Settings, store: ObjectStore) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    store.with_context(depth=2).update("orders", 0, 1, {1: b"b"})  # max-1: dispatched
    store.with_context(depth=3).update("orders", 0, 1, {1: b"c"})  # max: not dispatched
    publisher = MemoryPublisher()
    worker = Worker(settings.replace(max_trigger_depth=3), publisher=publisher)
    stats = asyncio.run(worker.run_async(burst=True))
    assert len(publisher.sent) == 2
    assert stats.depth_stops == 1
    depths = [
        json.loads(InvocationRequest.FromString(b).payload)["event_info"]["context"]["depth"]
        for _, b in publisher.sent
    ]
    assert depths == ["0", "2"]
    assert store.get("orders", 0, 1).entries[1] == b"c"  # type: ignore[union-attr]


def test_traceparent_travels_from_the_write(settings: Settings, store: ObjectStore) -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    store.with_context(depth=0, traceparent=tp).update("orders", 0, 1, {1: b"b"})
    publisher = MemoryPublisher()
    asyncio.run(Worker(settings, publisher=publisher).run_async(burst=True))
    contexts = [
        json.loads(InvocationRequest.FromString(b).payload)["event_info"]["context"]
        for _, b in publisher.sent
    ]
    assert contexts[1]["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert contexts[0]["traceparent"].split("-")[1] != "0af7651916cd43dd8448eb211c80319c"


def test_pending_entries_are_claimed_and_redelivered_with_the_same_invocation_ids(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    from oprc_redis_events.errors import ZenohUnavailableError

    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    store.update("orders", 0, 1, {1: b"b"})

    class Failing(MemoryPublisher):
        worker: Worker

        def put(self, key: str, payload: bytes) -> None:
            super().put(key, payload)
            self.worker.stop()  # a crash: nothing acknowledged
            raise ZenohUnavailableError("zenoh is down")

    failing = Failing()
    crashed = Worker(settings.replace(consumer="w1"), publisher=failing)
    failing.worker = crashed
    asyncio.run(crashed.run_async(burst=True))
    assert client.xpending("oprc:{orders:0}:outbox", "oprc-events")["pending"] == 2

    time.sleep(0.6)  # the entries must be idle for claim_idle_ms
    rescued = MemoryPublisher()
    rescuer = Worker(settings.replace(consumer="w2", claim_idle_ms=500), publisher=rescued)
    stats = asyncio.run(rescuer.run_async(burst=True))
    assert stats.claimed == 2
    assert len(rescued.sent) == 2
    assert rescued.sent[0] == failing.sent[0]  # same key (invocation id) and bytes
    assert client.xpending("oprc:{orders:0}:outbox", "oprc-events")["pending"] == 0
