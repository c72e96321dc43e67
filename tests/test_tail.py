"""Seeing your own triggers without a router: the worker and ``tail`` as two processes,
the warnings of a session nobody can reach, and ``tail`` waiting for its endpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from oprc_redis_events import ObjectEvent, ObjectStore, TriggerTarget
from oprc_redis_events.dev.servers import free_port

from .conftest import ZenohHub
from .helpers import wait_for_text

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]
ALONE = "no Zenoh endpoint"
TWO_IN_A_MINUTE = ["--count", "2", "--timeout", "60"]


def env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPRC_EVENTS_", "ODGM_"))}
    return {**clean, "PYTHONUNBUFFERED": "1", **extra}


def start(args: list[str], log: IO[str], **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args], stdout=log, stderr=subprocess.STDOUT, text=True, env=env(**extra)
    )


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(20)


def order_with_triggers(store: ObjectStore) -> None:
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.append(
        TriggerTarget(cls_id="notification_service", partition_id=0, fn_id="send_notification")
    )
    ev.data_trigger[42].on_update.append(
        TriggerTarget(cls_id="audit_log", partition_id=0, object_id=7, fn_id="record")
    )
    store.create("orders", 0, 1001, {42: b"pending"}, event=ev)


def test_two_terminals_worker_listens_and_tail_connects(
    redis_url: str, store: ObjectStore, tmp_path: Path
) -> None:
    """The README's recipe: `worker --zenoh-listen EP` and `tail --zenoh-connect EP`."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    order_with_triggers(store)
    worker_log, tail_log = tmp_path / "worker.log", tmp_path / "tail.log"
    with worker_log.open("w") as wlog, tail_log.open("w") as tlog:
        worker = start(["worker", "--redis-url", redis_url, "--zenoh-listen", endpoint], wlog)
        tail = None
        try:
            assert wait_for_text(worker_log, "worker started"), worker_log.read_text()
            tail = subprocess.Popen(
                [*CLI, "tail", "--zenoh-connect", endpoint, "--json", *TWO_IN_A_MINUTE],
                stdout=subprocess.PIPE,
                stderr=tlog,
                text=True,
                env=env(),
            )
            assert wait_for_text(tail_log, "listening on oprc/**"), tail_log.read_text()
            time.sleep(1.0)  # the subscription reaches the worker's session
            store.update("orders", 0, 1001, {42: b"paid"})
            out, _ = tail.communicate(timeout=60)
        finally:
            if tail is not None and tail.poll() is None:
                tail.kill()
                tail.wait(10)
            assert stop(worker) == 0
    lines = sorted((json.loads(line) for line in out.splitlines()), key=lambda d: d["target"])
    assert [(d["target"], d["target_object_id"], d["payload"]) for d in lines] == [
        ("audit_log.record", 7, "paid"),
        ("notification_service.send_notification", None, "paid"),
    ]
    assert ALONE not in worker_log.read_text() + tail_log.read_text()


def test_a_worker_nobody_can_reach_says_so_once(
    redis_url: str, store: ObjectStore, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = start(["worker", "--redis-url", redis_url], log, OPRC_EVENTS_DELIVERY="put-odgm")
        try:
            assert wait_for_text(log_path, "worker started")
            order_with_triggers(store)
            store.update("orders", 0, 1001, {42: b"paid"})
            time.sleep(2)
        finally:
            assert stop(worker) == 0
    output = log_path.read_text()
    assert output.count(ALONE) == 1, output
    assert "WARNING" in output and "--zenoh-listen tcp/127.0.0.1:7447" in output
    assert "delivery=put-odgm" in output  # OPRC_EVENTS_DELIVERY is read


def test_a_bad_delivery_in_the_environment_is_named() -> None:
    out = subprocess.run(
        [*CLI, "worker"], capture_output=True, text=True, env=env(OPRC_EVENTS_DELIVERY="pigeon")
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "'pigeon' is not one of" in out.stderr and "--delivery" in out.stderr


def test_tail_nobody_can_reach_says_so() -> None:
    out = subprocess.run(
        [*CLI, "tail", "--timeout", "0.5"], capture_output=True, text=True, env=env(), timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.count(ALONE) == 1 and "--zenoh-connect tcp/127.0.0.1:7447" in out.stderr


def test_tail_waits_for_an_endpoint_that_comes_up_later(
    store: ObjectStore,
    settings,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from oprc_redis_events.worker.loop import Worker
    from oprc_redis_events.worker.publisher import ZenohPublisher

    from .helpers import RunningWorker

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    order_with_triggers(store)
    tail_log = tmp_path / "tail.log"
    hub = running = None
    with tail_log.open("w") as tlog:
        tail = subprocess.Popen(
            [*CLI, "tail", "--zenoh-connect", endpoint, "--count", "2", "--timeout", "60"],
            stdout=subprocess.PIPE,
            stderr=tlog,
            text=True,
            env=env(),
        )
        try:
            assert wait_for_text(tail_log, "Zenoh unavailable"), tail_log.read_text()
            assert tail.poll() is None  # it did not give up
            hub = ZenohHub(endpoint)
            assert wait_for_text(tail_log, "listening on"), tail_log.read_text()
            time.sleep(0.5)
            worker = Worker(
                settings,
                publisher=ZenohPublisher(hub.session()),
                block_ms=20,
                discover_interval=0.05,
            )
            running = RunningWorker(worker)
            store.update("orders", 0, 1001, {42: b"paid"})
            out, _ = tail.communicate(timeout=60)
        finally:
            if running is not None:
                running.stop()
            if tail.poll() is None:
                tail.kill()
                tail.wait(10)
            if hub is not None:
                hub.close()
    assert tail.returncode == 0, tail_log.read_text()
    assert "audit_log.record[7]" in out and "notification_service.send_notification" in out
    assert ".rs:" not in tail_log.read_text()
