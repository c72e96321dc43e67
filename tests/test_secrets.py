"""Secrets: Redis credentials from the environment or a file (not only the URL), and no
password in the logs, reprs, metrics, error messages or command lines the project
controls.  The worker and the CLI run against a password-protected Redis; everything they
print, log and serve is searched for the password."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from oprc_redis_events import ObjectStore, Settings
from oprc_redis_events.config import read_secret_file
from oprc_redis_events.connect.redis_client import redis_client
from oprc_redis_events.dev.servers import RedisServer, free_port
from oprc_redis_events.errors import ConfigError
from oprc_redis_events.worker.loop import Worker

from .conftest import ZenohHub
from .helpers import watch_all
from .test_cli_errors import assert_one_error_line, env

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]
PASSWORD = "Pw-7f3a9c-secret"
USER_PASSWORD = "user-Pw-22b81d"


@pytest.fixture(scope="module")
def secured() -> Iterator[RedisServer]:
    """A Redis whose default user has PASSWORD, and user ``app`` with USER_PASSWORD."""
    with RedisServer(extra=["--requirepass", PASSWORD]) as server:
        with redis.Redis(port=server.port, password=PASSWORD) as admin:
            admin.acl_setuser("app", enabled=True, passwords=[f"+{USER_PASSWORD}"],
                              keys=["*"], channels=["*"], commands=["+@all"])  # fmt: skip
        yield server


@pytest.fixture
def plain_url(secured: RedisServer) -> str:
    """The URL without credentials."""
    with redis.Redis(port=secured.port, password=PASSWORD) as admin:
        admin.flushall()
    return secured.url


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "redis-password"
    path.write_text(PASSWORD + "\n")
    return path


def cli(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env={**env(), **extra_env}
    )


def assert_no_secret(text: str) -> None:
    assert PASSWORD not in text and USER_PASSWORD not in text, text


@pytest.mark.quick
def test_settings_take_credentials_from_the_environment(tmp_path: Path) -> None:
    url = "redis://127.0.0.1:1/0"
    settings = Settings.from_env(
        {"OPRC_EVENTS_REDIS_PASSWORD": PASSWORD, "OPRC_EVENTS_REDIS_USERNAME": "app"},
        redis_url=url,
    )
    assert settings.redis_credentials() == {"username": "app", "password": PASSWORD}
    assert_no_secret(repr(settings))
    path = tmp_path / "pw"
    path.write_text("from-file\r\n")
    with_file = settings.replace(redis_password_file=str(path))
    assert with_file.redis_credentials()["password"] == "from-file"  # the file wins
    path.write_text("rotated")
    assert with_file.redis_credentials()["password"] == "rotated"  # read again
    assert_no_secret(repr(with_file))


@pytest.mark.quick
def test_an_unreadable_or_empty_password_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the Redis password file .*missing"):
        Settings.from_env({"OPRC_EVENTS_REDIS_PASSWORD_FILE": str(tmp_path / "missing")})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_secret_file(str(empty))


@pytest.mark.quick
def test_the_url_password_is_redacted_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({}, redis_url=f"redis://:{PASSWORD}@127.0.0.1:1/0?foo=bar")
    assert "***" in str(caught.value)
    assert_no_secret(str(caught.value))


def test_library_clients_use_the_environment_credentials(plain_url: str) -> None:
    settings = Settings.from_env(
        {"OPRC_EVENTS_REDIS_USERNAME": "app", "OPRC_EVENTS_REDIS_PASSWORD": USER_PASSWORD},
        redis_url=plain_url,
    )
    with redis_client(settings) as client:
        assert client.acl_whoami() in ("app", b"app")
    store = ObjectStore(redis_client(settings), settings)
    try:
        store.create("orders", 0, 1, {42: b"a"})
        assert_no_secret(repr(store) + repr(settings))
    finally:
        store.close()
    assert_no_secret(repr(Worker(settings)))


def test_cli_commands_never_show_the_password(plain_url: str, password_file: Path) -> None:
    """Each source of the password works; every output (and the error of a wrong password
    from each source) is free of it."""
    by_file = ["--redis-url", plain_url, "--redis-password-file", str(password_file)]
    outputs = [
        cli("put", "orders", "0", "1", "42=a", "--create", *by_file),
        cli("get", "orders", "0", "1", "--json", *by_file),
        cli("groups", "list", "--redis-url", plain_url, OPRC_EVENTS_REDIS_PASSWORD=PASSWORD),
        cli(
            "dlq",
            "list",
            "--redis-url",
            plain_url,
            "--redis-username",
            "app",
            OPRC_EVENTS_REDIS_PASSWORD=USER_PASSWORD,
        ),
        cli(
            "triggers",
            "list",
            "orders",
            "0",
            "1",
            "--redis-url",
            plain_url.replace("redis://", f"redis://app:{USER_PASSWORD}@"),
        ),
    ]
    for out in outputs:
        assert out.returncode == 0, out.stderr
        assert_no_secret(out.stdout + out.stderr)
    assert '"a"' in outputs[1].stdout
    wrong = password_file.parent / "wrong"
    wrong.write_text(PASSWORD[::-1])
    for out in (
        cli(
            "get", "orders", "0", "1", "--redis-url", plain_url, "--redis-password-file", str(wrong)
        ),
        cli("get", "orders", "0", "1", "--redis-url", plain_url),  # no password at all
        cli(
            "get",
            "orders",
            "0",
            "1",
            "--redis-url",
            f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0",
        ),
    ):
        message = assert_one_error_line(out)
        assert_no_secret(out.stdout + out.stderr)
        assert PASSWORD[::-1] not in out.stdout + out.stderr
        assert "Redis" in message


def test_the_worker_never_shows_the_password(
    plain_url: str, password_file: Path, zenoh_hub: ZenohHub, tmp_path: Path
) -> None:
    """The worker (debug logs, JSON logs, metrics) with its password in a file: nothing it
    prints or serves, nor its command line (``ps``), holds the password."""
    inbox = zenoh_hub.subscribe()
    port = free_port()
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [*CLI, "worker", "--redis-url", plain_url, "--zenoh-connect", zenoh_hub.endpoint,
             "--capture", "keyspace", "--log-level", "debug", "--log-format", "json",
             "--metrics-port", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
            env={**env(), "OPRC_EVENTS_REDIS_PASSWORD_FILE": str(password_file)},
        )  # fmt: skip
        try:
            store = ObjectStore.from_url(plain_url.replace("redis://", f"redis://:{PASSWORD}@"))
            store.create("orders", 0, 1, {42: b"a"}, event=watch_all([42]))
            store.close()
            assert len(inbox.wait_for(1, timeout=30)) == 1, log_path.read_text()
            metrics = scrape(f"http://127.0.0.1:{port}/metrics")
            command_line = " ".join(psutil.Process(worker.pid).cmdline())
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    output = log_path.read_text()
    assert worker.returncode == 0, output
    assert "oprc_events_triggers_dispatched_total" in metrics
    for text in (output, metrics, command_line, str(os.environ)):
        assert_no_secret(text)


def scrape(url: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
