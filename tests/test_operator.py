"""Operator experience: metrics and health, logs, tail, explain, object and trigger commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import redis

from oprc_redis_events import (
    ObjectEvent,
    ObjectStore,
    Settings,
    TriggerTarget,
    ValData,
    ValType,
)
from oprc_redis_events.dev.servers import RedisServer
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher, ZenohPublisher

from .conftest import ZenohHub
from .helpers import RunningWorker, events, watch_all

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, check=check, timeout=60)


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or (
            line.startswith(name + "{") and line.split(" ")[0] == name
        ):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the scrape")


def test_lag_of_many_partitions_beside_a_broken_one(
    settings: Settings,
    store: ObjectStore,
    client: redis.Redis,
    wait: Callable[[Callable[[], bool], float], bool],
) -> None:
    """Every partition's lag is read in one pipeline: a broken outbox is blamed alone and
    the others' lag is still reported."""
    for pid in range(3):
        store.create("lagged", pid, 1, {1: b"0"}, event=watch_all([1]))
    worker = Worker(
        settings,
        publisher=MemoryPublisher(),
        block_ms=20,
        discover_interval=0.05,
        metrics_port=0,
    )
    running = RunningWorker(worker)
    try:
        assert wait(lambda: len(worker.states) == 3, 10)
        client.delete("oprc:{lagged:0}:outbox")
        client.set("oprc:{lagged:0}:outbox", "broken")
        for i in range(4):
            client.xadd("oprc:{lagged:2}:outbox", {"n": str(i)})  # poison: dead-lettered
        assert wait(lambda: worker.broken.is_unresolved("oprc:{lagged:0}:outbox"), 20)
        time.sleep(0.3)
        assert worker.metrics_server is not None
        _, text = scrape(worker.metrics_server.port)
        assert 'oprc_events_outbox_lag{partition="lagged:1"}' in text
        assert 'oprc_events_outbox_lag{partition="lagged:2"}' in text
        assert 'oprc_events_outbox_lag{partition="lagged:0"}' not in text
    finally:
        running.stop()


def test_metrics_match_what_happened(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    store.create("orders", 0, 1, {1: b"0"}, event=watch_all([1]))
    for i in range(1, 10):
        store.update("orders", 0, 1, {1: str(i).encode()})
    store.with_context(depth=10).update("orders", 0, 1, {1: b"deep"})  # at the depth limit
    client.xadd("oprc:{orders:0}:outbox", {"n": "x"})  # poison
    worker = Worker(
        settings, publisher=MemoryPublisher(), block_ms=20, discover_interval=0.05, metrics_port=0
    )
    running = RunningWorker(worker)
    try:
        deadline = time.monotonic() + 10
        while worker.stats.entries_read < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert worker.metrics_server is not None
        port = worker.metrics_server.port
        status, text = scrape(port)
        assert status == 200
        assert metric(text, 'oprc_events_triggers_dispatched_total{cls="svc",fn="f"}') == 10
        assert metric(text, "oprc_events_entries_read_total") == 12
        assert metric(text, "oprc_events_events_read_total") == 11
        assert metric(text, "oprc_events_depth_stops_total") == 1
        assert metric(text, "oprc_events_dead_letters_total") == 1
        assert metric(text, "oprc_events_dispatch_latency_seconds_count") == 10
        assert metric(text, 'oprc_events_outbox_lag{partition="orders:0"}') == 0
        assert metric(text, "oprc_events_partitions_owned") == 1
        assert scrape(port, "/healthz") == (200, "ok\n")
        assert scrape(port, "/readyz") == (200, "ok\n")
    finally:
        running.stop()


def test_json_logs_and_no_password_anywhere(tmp_path: Path, zenoh_hub: ZenohHub) -> None:
    with RedisServer(extra=["--requirepass", "s3cret-pw"]) as server:
        url = f"redis://:s3cret-pw@127.0.0.1:{server.port}/0"
        log = (tmp_path / "worker.log").open("w")
        proc = subprocess.Popen(
            [
                *CLI,
                "worker",
                "--redis-url",
                url,
                "--zenoh-connect",
                zenoh_hub.endpoint,
                "--log-format",
                "json",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            store = ObjectStore.from_url(url)
            store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
            assert "s3cret-pw" not in repr(store) and "s3cret-pw" not in repr(store.settings)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not _acknowledged(store.client):
                time.sleep(0.05)
            store.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
            log.close()
        output = (tmp_path / "worker.log").read_text()
        assert "s3cret-pw" not in output
        lines = [json.loads(line) for line in output.splitlines() if line.strip()]
        assert {"ts", "level", "logger", "message"} <= set(lines[0])
        messages = [line["message"] for line in lines]
        assert any("redis://:***@127.0.0.1" in m for m in messages)
        assert any(m.startswith("worker stopped: entries=1") for m in messages)


def _acknowledged(client: redis.Redis) -> bool:
    """Whether the worker's group has read and acknowledged everything in orders:0."""
    if not client.exists("oprc:{orders:0}:outbox"):
        return False
    groups = client.xinfo_groups("oprc:{orders:0}:outbox")
    return bool(groups) and groups[0]["lag"] == 0 and groups[0]["pending"] == 0


def test_tail_prints_real_events(
    store: ObjectStore, settings: Settings, zenoh_hub: ZenohHub
) -> None:
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.append(
        TriggerTarget(cls_id="notification_service", partition_id=0, fn_id="send_notification")
    )
    store.create("orders", 0, 1001, {42: b"pending"}, event=ev)
    tail = subprocess.Popen(
        [
            *CLI,
            "tail",
            "--zenoh-connect",
            zenoh_hub.endpoint,
            "--json",
            "--count",
            "2",
            "--timeout",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tail.stderr is not None and "listening" in tail.stderr.readline()
    time.sleep(0.5)
    worker = Worker(
        settings, publisher=ZenohPublisher(zenoh_hub.session()), block_ms=20, discover_interval=0.05
    )
    running = RunningWorker(worker)
    try:
        store.update("orders", 0, 1001, {42: b"paid"})
        store.with_context(depth=3).update("orders", 0, 1001, {42: b"shipped"})
        out, _ = tail.communicate(timeout=30)
    finally:
        running.stop()
        if tail.poll() is None:
            tail.kill()
            tail.wait(5)
        tail.stderr.close()
    first, second = [json.loads(line) for line in out.splitlines()]
    assert first["target"] == "notification_service.send_notification"
    assert first["event"] == "DATA_UPDATE" and first["field"] == 42
    assert first["source"] == "orders/0/1001" and first["payload"] == "paid"
    assert first["depth"] == 0 and second["depth"] == 3 and second["payload"] == "shipped"
    assert first["key"].endswith("/" + first["invocation_id"])


def test_explain_predicts_the_events(
    store: ObjectStore, client: redis.Redis, redis_url: str
) -> None:
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.append(
        TriggerTarget(cls_id="notification_service", partition_id=0, fn_id="send_notification")
    )
    ev.data_trigger_str["note"].on_create.append(
        TriggerTarget(cls_id="audit", partition_id=0, object_id=1, fn_id="record")
    )
    store.create("orders", 0, 1001, {42: b"pending", 7: b"x"}, event=ev)
    out = cli(
        "explain", "orders", "0", "1001", "42=paid", "note=hi", "7=x", "--redis-url", redis_url
    ).stdout.splitlines()
    assert out == [
        "field 42: b'pending' -> b'paid' = DATA_UPDATE -> notification_service/0/send_notification"
        " (data_trigger[42].on_update; dispatched)",
        "field note: (absent) -> b'hi' = DATA_CREATE -> audit/0/objects/1/record"
        " (data_trigger_str['note'].on_create; dispatched)",
    ]  # 7 is unchanged: not listed
    assert client.xlen("oprc:{orders:0}:outbox") == 0  # a dry run
    deep = cli(
        "explain",
        "orders",
        "0",
        "1001",
        "--delete",
        "42",
        "--depth",
        "10",
        "--redis-url",
        redis_url,
    ).stdout
    assert "DATA_DELETE: no target in data_trigger[42].on_delete, nothing fires" in deep
    cli("put", "orders", "0", "1001", "42=paid", "note=hi", "7=x", "--redis-url", redis_url)
    assert events(client) == [("UPDATE", "42", b"paid"), ("CREATE", "note", b"hi")]


def test_explain_sees_a_change_of_value_type_as_the_write_path_does(
    store: ObjectStore, client: redis.Redis, redis_url: str
) -> None:
    ev = ObjectEvent()
    ev.data_trigger[1].on_update.append(TriggerTarget(cls_id="svc", partition_id=0, fn_id="f"))
    crdt = ValData(data=b"same", type=ValType.VAL_TYPE_CRDT_MAP)
    store.create("orders", 0, 5, {1: crdt}, event=ev)
    out = cli("explain", "orders", "0", "5", "1=same", "--redis-url", redis_url).stdout
    assert out.startswith("field 1: b'same' -> b'same' = DATA_UPDATE -> svc/0/f"), out
    cli("put", "orders", "0", "5", "1=same", "--redis-url", redis_url)
    assert events(client) == [("UPDATE", "1", b"same")]


def test_object_and_trigger_commands(redis_url: str, client: redis.Redis) -> None:
    cli("put", "orders", "0", "9", "42=pending", "name=ann", "--create", "--redis-url", redis_url)
    assert (
        "already exists"
        in cli(
            "put", "orders", "0", "9", "1=x", "--create", "--redis-url", redis_url, check=False
        ).stderr
    )
    cli(
        "triggers",
        "add",
        "orders",
        "0",
        "9",
        "on_update",
        "42",
        "notification_service/0/send_notification",
        "--option",
        "channel=sms",
        "--redis-url",
        redis_url,
    )
    cli(
        "triggers",
        "add",
        "orders",
        "0",
        "9",
        "on_complete",
        "pay",
        "audit/0/objects/1/record",
        "--redis-url",
        redis_url,
    )
    listing = cli("triggers", "list", "orders", "0", "9", "--redis-url", redis_url).stdout
    assert listing.splitlines() == [
        "data_trigger[42].on_update -> notification_service/0/send_notification channel=sms",
        "func_trigger[pay].on_complete -> audit/0/objects/1/record",
    ]
    doc = json.loads(cli("get", "orders", "0", "9", "--json", "--redis-url", redis_url).stdout)
    assert doc["entries"] == {"42": "pending", "name": "ann"} and doc["version"] == 1
    put = cli("put", "orders", "0", "9", "42=paid", "--redis-url", redis_url).stdout
    assert put == "version 2: 1 event(s) queued\n"
    assert events(client) == [("UPDATE", "42", b"paid")]
    cli(
        "triggers",
        "remove",
        "orders",
        "0",
        "9",
        "on_update",
        "42",
        "notification_service/0/send_notification",
        "--option",
        "channel=sms",
        "--redis-url",
        redis_url,
    )
    assert (
        "func_trigger"
        in cli("triggers", "list", "orders", "0", "9", "--redis-url", redis_url).stdout
    )
    bad = cli(
        "triggers",
        "add",
        "orders",
        "0",
        "9",
        "on_update",
        "42",
        "a/b",
        "--redis-url",
        redis_url,
        check=False,
    )
    assert bad.returncode == 1 and "write cls/pid/fn" in bad.stderr
    cli("delete", "orders", "0", "9", "name", "--redis-url", redis_url)
    cli("delete", "orders", "0", "9", "--redis-url", redis_url)
    assert (
        "does not exist"
        in cli("get", "orders", "0", "9", "--redis-url", redis_url, check=False).stderr
    )


def test_progress_line_is_readable(settings: Settings, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    worker = Worker(settings, publisher=MemoryPublisher())
    worker.stats.entries_read, worker.stats.triggers_sent = 5, 9
    with caplog.at_level(logging.INFO, logger="oprc_redis_events.worker.loop"):
        worker._log_progress()
        worker._log_progress()  # nothing new: no second line
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress")]
    assert lines == [
        "progress: +5 entries, +9 triggers sent (total 9), 0 partition(s), lag 0, "
        "depth stops 0, retries 0, dead letters 0"
    ]
    asyncio.run(worker.client.aclose())


def test_password_in_the_query_string_never_shows(caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    from oprc_redis_events import AsyncObjectStore

    with RedisServer(extra=["--requirepass", "s3cret-pw"]) as server:
        url = f"redis://127.0.0.1:{server.port}/0?password=s3cret-pw"
        store = ObjectStore.from_url(url)
        store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))  # it authenticates
        async_store = AsyncObjectStore.from_url(url)
        assert all("s3cret" not in repr(x) for x in (store, store.settings, async_store))
        assert "password=***" in repr(store.settings)
        assert repr(store) == f"ObjectStore('redis://127.0.0.1:{server.port}/0', depth=0)"
        store.close()
        asyncio.run(async_store.close())
        worker = Worker(Settings.from_env({}, redis_url=url), publisher=MemoryPublisher())
        assert "s3cret" not in repr(worker)
        with caplog.at_level(logging.INFO, logger="oprc_redis_events.worker.loop"):
            stats = asyncio.run(worker.run_async(burst=True))
        assert stats.triggers_sent == 1
        started = [r.getMessage() for r in caplog.records if "worker started" in r.getMessage()]
        assert started and "password=***" in started[0]
        assert "s3cret" not in caplog.text


def test_get_json_keeps_binary_values(redis_url: str, store: ObjectStore) -> None:
    store.create("orders", 0, 1, {1: b"\xff\x00a", 2: "café".encode(), "t": b"text"})
    doc = json.loads(cli("get", "orders", "0", "1", "--json", "--redis-url", redis_url).stdout)
    assert doc["entries"] == {"1": [255, 0, 97], "2": "café", "t": "text"}
    assert "\ufffd" not in json.dumps(doc, ensure_ascii=False)
