"""Poison outbox entries: any entry the worker cannot turn into PUTs is dead-lettered with
the reason, and its partition and the others flow on.  The entries are written with a raw
client, behind the library's back, copied from a real entry with one field broken."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest
import redis

from oprc_redis_events import InvocationRequest, ObjectStore, Settings, TriggerPayload
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher, ZenohPublisher

from .conftest import ZenohHub
from .helpers import RunningWorker, watch_all

#: a target (array-like, see triggers.Target) whose partition id is out of range
BAD_TARGET = msgspec.msgpack.encode([["svc", 2**40, None, None, "f", {}]])

#: one broken field (None: the field is missing) -> a word the dead-letter reason must contain
POISON: list[tuple[dict[str, bytes | None], str]] = [
    ({"ts": b"-5"}, "'ts'"),
    ({"ts": str(2**64).encode()}, "'ts'"),
    ({"ts": b"1" * 5000}, "'ts'"),
    ({"v": b"-1"}, "'v'"),
    ({"v": b"x"}, "'v'"),
    ({"d": b"-1"}, "'d'"),
    ({"o": b""}, "'o'"),
    ({"o": b"a/b"}, "'o'"),
    ({"o": str(2**64).encode()}, "'o'"),
    ({"o": b"\xff"}, "'o'"),
    ({"n": b"0"}, "'n'"),
    ({"n": b"2"}, "'e2'"),
    ({"e1": b"9"}, "event type"),
    ({"k1": b""}, "'k1'"),
    ({"k1": b"a b"}, "'k1'"),
    ({"t1": b"\xc1garbage"}, "targets"),
    ({"t1": msgspec.msgpack.encode({"not": "a list"})}, "targets"),
    ({"t1": BAD_TARGET}, "partition_id"),
    ({"src": b"a/b"}, "'src'"),
    ({"src": str(2**64).encode() + b"-0"}, "entry id"),  # no ts: the time is src's ms
]


def _base(store: ObjectStore, client: redis.Redis) -> dict[bytes, bytes]:
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    [(_, fields)] = client.xrange(PartitionKeys.of("orders", 0).outbox)
    return dict(fields)


def _poison(base: dict[bytes, bytes], change: dict[str, bytes | None]) -> dict[bytes, bytes]:
    fields = dict(base)
    for name, value in change.items():
        if value is None:
            fields.pop(name.encode(), None)
        else:
            fields[name.encode()] = value
    return fields


@pytest.mark.parametrize("payload_format", ["json", "protobuf"])
def test_every_kind_of_poison_entry_is_dead_lettered_with_its_reason(
    payload_format: str, settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    keys = PartitionKeys.of("orders", 0)
    base = _base(store, client)
    for i, (change, _) in enumerate(POISON):
        client.xadd(keys.outbox, _poison(base, change))  # type: ignore[arg-type]
        store.update("orders", 0, 1, {1: f"v{i}".encode()})
    publisher = MemoryPublisher()
    worker = Worker(settings.replace(payload_format=payload_format), publisher=publisher)
    stats = asyncio.run(worker.run_async(burst=True))
    assert len(publisher.sent) == 1 + len(POISON)  # every healthy write, in order
    if payload_format == "json":
        values = [
            bytes(json.loads(InvocationRequest.FromString(b).payload)["original_payload"])
            for _, b in publisher.sent
        ]
    else:
        values = [
            TriggerPayload.FromString(InvocationRequest.FromString(b).payload).original_payload
            for _, b in publisher.sent
        ]
    assert values == [b"a"] + [f"v{i}".encode() for i in range(len(POISON))]
    dead = client.xrange(keys.dead_letters)
    assert stats.dead_letters == len(POISON) == len(dead)
    for (change, word), (_, fields) in zip(POISON, dead, strict=True):
        reason = fields[b"dlq:reason"].decode()
        assert reason.startswith("cannot be dispatched: "), reason
        assert word in reason, (change, reason)
    assert client.xpending(keys.outbox, "oprc-events")["pending"] == 0


def test_a_malformed_traceparent_is_ignored_as_w3c_says(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    keys = PartitionKeys.of("orders", 0)
    client.xadd(keys.outbox, _poison(_base(store, client), {"tp": b"00-zz-\xff-01"}))  # type: ignore[arg-type]
    publisher = MemoryPublisher()
    stats = asyncio.run(Worker(settings, publisher=publisher).run_async(burst=True))
    assert stats.dead_letters == 0 and len(publisher.sent) == 2
    context = json.loads(InvocationRequest.FromString(publisher.sent[1][1]).payload)
    parts = context["event_info"]["context"]["traceparent"].split("-")
    assert [len(p) for p in parts] == [2, 32, 16, 2]


def test_a_poison_entry_does_not_stop_a_running_worker_in_protobuf_mode(
    settings: Settings, store: ObjectStore, client: redis.Redis, zenoh_hub: ZenohHub
) -> None:
    inbox = zenoh_hub.subscribe()
    base = _base(store, client)
    for pid in (1, 2, 3):
        store.create("orders", pid, 1, {1: b"a"}, event=watch_all([1]))
    config = settings.replace(payload_format="protobuf", claim_idle_ms=1000)
    worker = Worker(
        config, publisher=ZenohPublisher(zenoh_hub.session()), block_ms=50, discover_interval=0.05
    )
    running = RunningWorker(worker)
    try:
        assert len(inbox.wait_for(4)) == 4
        client.xadd(PartitionKeys.of("orders", 0).outbox, _poison(base, {"ts": b"-5"}))  # type: ignore[arg-type]
        for i in range(30):
            for pid in (0, 1, 2, 3):
                store.update("orders", pid, 1, {1: f"{i}".encode()})
        got = inbox.wait_for(4 + 120, timeout=30)
        assert len(got) == 4 + 120
        assert running.thread.is_alive()
    finally:
        running.stop()
    [(_, fields)] = client.xrange(PartitionKeys.of("orders", 0).dead_letters)
    assert b"'ts'" in fields[b"dlq:reason"]
    assert fields[b"ts"] == b"-5"
