"""No background task of the worker ends silently: a failure is logged at once, the task
is restarted, and a task that cannot recover fails the worker (not ready, exit non-zero)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from oprc_redis_events import ObjectStore, Settings
from oprc_redis_events.errors import CaptureError, ConfigError
from oprc_redis_events.protocol.keys import workers_key
from oprc_redis_events.worker.logonce import ThrottledLog
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.metrics import MetricsServer, WorkerMetrics
from oprc_redis_events.worker.publisher import MemoryPublisher
from oprc_redis_events.worker.supervisor import RestartPolicy, Supervisor, WorkerFailedError

from .conftest import ZenohHub
from .helpers import RunningWorker, watch_all

FAST = RestartPolicy(max_failures=3, backoff_s=0.05)
LOG = logging.getLogger("tests.supervision")
CLI = [sys.executable, "-m", "oprc_redis_events.cli"]


def supervise(*tasks: tuple[str, Callable[[], object]]) -> Supervisor:
    """Run ``tasks`` under a supervisor until they end or it fails the worker."""

    async def main() -> Supervisor:
        stop = asyncio.Event()
        supervisor = Supervisor(stop, ThrottledLog(LOG), FAST)
        for name, run in tasks:
            supervisor.start(name, run)  # type: ignore[arg-type]
        await asyncio.wait_for(supervisor.join(), 30)
        return supervisor

    return asyncio.run(main())


def test_a_task_that_keeps_failing_fails_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("cannot")

    supervisor = supervise(("broken", broken))
    assert calls == 3
    assert supervisor.failure == "broken failed 3 times in a row: RuntimeError: cannot"
    assert not supervisor.healthy
    records = [r for r in caplog.records if "cannot" in r.getMessage()]
    assert records[0].exc_info is not None  # logged at once, with its traceback
    assert records[-1].levelno == logging.CRITICAL
    assert len([r for r in records if r.exc_info]) == 1  # the traceback once


def test_a_task_that_recovers_keeps_running_and_one_that_ends_is_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    runs: list[str] = []
    stop_after = asyncio.Event()

    async def flaky() -> None:
        runs.append("flaky")
        if runs.count("flaky") == 1:
            raise RuntimeError("once")
        await stop_after.wait()

    async def quitter() -> None:
        runs.append("quitter")
        if runs.count("quitter") == 2:
            stop_after.set()

    async def main() -> Supervisor:
        stop = asyncio.Event()
        supervisor = Supervisor(stop, ThrottledLog(LOG), FAST)
        supervisor.start("flaky", flaky)
        supervisor.start("quitter", quitter)
        await stop_after.wait()
        stop.set()
        await asyncio.wait_for(supervisor.join(), 30)
        return supervisor

    supervisor = asyncio.run(main())
    assert supervisor.failure is None and supervisor.healthy
    assert runs.count("flaky") == 2 and runs.count("quitter") == 2
    found = [r.getMessage() for r in caplog.records]
    assert any("flaky failed (RuntimeError: once); restarting it" in m for m in found)
    assert any("quitter failed (RuntimeError: quitter ended while the worker" in m for m in found)


def test_a_configuration_error_fails_at_once() -> None:
    async def misconfigured() -> None:
        raise ConfigError("notify-keyspace-events cannot be set")

    supervisor = supervise(("capture", misconfigured))
    assert supervisor.failure == "capture failed: ConfigError: notify-keyspace-events cannot be set"


def test_capture_that_gave_up_fails_the_worker_at_once() -> None:
    calls = 0

    async def gave_up() -> None:  # capture retried on its own before raising this
        nonlocal calls
        calls += 1
        raise CaptureError("keyspace capture failed 5 times in a row")

    supervisor = supervise(("capture", gave_up))
    assert calls == 1
    assert supervisor.failure is not None and "CaptureError" in supervisor.failure


def test_a_worker_whose_maintenance_cannot_recover_stops_and_raises(
    settings: Settings, store: ObjectStore, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="oprc_redis_events")
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    client.set(workers_key("oprc-events"), "oops")  # the heartbeat set, of the wrong type
    worker = Worker(settings, publisher=MemoryPublisher(), block_ms=20, discover_interval=0.05)
    worker.supervisor.policy = FAST
    with pytest.raises(WorkerFailedError, match="oprc:workers:oprc-events is a string"):
        asyncio.run(asyncio.wait_for(worker.run_async(), 30))
    assert not worker.ready()
    failures = [r.getMessage() for r in caplog.records if "maintenance" in r.getMessage()]
    assert failures[0].startswith("maintenance failed (BrokenKeyError: oprc:workers:")
    assert "restarting it in 0.1 s" in failures[0]
    assert "the worker stops" in failures[-1]
    assert not [r for r in caplog.records if r.exc_info]  # the message says it all


def test_the_dispatch_loop_is_restarted_and_reads_what_it_had_read_again(
    settings: Settings, store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="oprc_redis_events")
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    publisher = MemoryPublisher()
    # entries left pending are claimed after 10 minutes: only a re-read can deliver them here
    config = settings.replace(claim_idle_ms=600_000)
    worker = Worker(config, publisher=publisher, block_ms=20, discover_interval=0.05)
    original = worker._handle
    failed = threading.Event()

    async def handle_failing_once(*args: Any) -> int:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("a bug")  # the entries were read, not handled
        return await original(*args)

    worker._handle = handle_failing_once  # type: ignore[method-assign]
    running = RunningWorker(worker)
    try:
        assert failed.wait(10)
        store.update("orders", 0, 1, {1: b"b"})
        deadline = time.monotonic() + 15
        while len(publisher.sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(publisher.sent) == 2
        assert running.thread.is_alive()
    finally:
        running.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert any("dispatch loop failed (RuntimeError: a bug)" in m for m in messages)


def test_readiness_follows_the_supervisor_and_keyspace_capture(settings: Settings) -> None:
    class Capture:
        healthy = True

    worker = Worker(settings, publisher=MemoryPublisher())
    worker._last_redis_ok = time.monotonic()
    assert worker.ready()
    worker.capture = Capture()
    assert worker.ready()
    worker.capture.healthy = False  # failing, and retrying: not ready
    assert not worker.ready()
    worker.capture = None
    worker.supervisor.down.add("maintenance")  # a task waiting for its restart
    assert not worker.ready()
    asyncio.run(worker.client.aclose())


def test_a_metrics_server_that_dies_is_reported() -> None:
    class Owner:
        stats = None

    reported: list[BaseException] = []
    server = MetricsServer(
        WorkerMetrics(Owner()), "127.0.0.1", 0, lambda: True, lambda: True, reported.append
    )

    def crash() -> None:
        raise OSError("socket gone")

    server.server.serve_forever = crash  # type: ignore[method-assign]
    server.start()
    server.thread.join(10)
    server.server.server_close()
    assert [str(e) for e in reported] == ["socket gone"]


def test_the_cli_worker_exits_non_zero_when_it_cannot_recover(
    store: ObjectStore, client: redis.Redis, redis_url: str, zenoh_hub: ZenohHub
) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    client.set(workers_key("oprc-events"), "oops")
    proc = subprocess.run(
        [*CLI, "worker", "--redis-url", redis_url, "--zenoh-connect", zenoh_hub.endpoint],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: maintenance failed 5 times in a row: BrokenKeyError: ")
    assert "oprc:workers:oprc-events is a string" in last
    assert "Traceback" not in proc.stderr  # the error names the key: no traceback
    assert proc.stderr.count("maintenance failed (BrokenKeyError") == 1  # then no repeat
