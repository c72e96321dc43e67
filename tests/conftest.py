"""Fixtures: real redis-server processes and Zenoh sessions on loopback, always stopped."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import venv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import zenoh

from oprc_redis_events import ObjectStore, Settings
from oprc_redis_events.connect.zenoh_session import open_session
from oprc_redis_events.dev.cluster import RedisCluster
from oprc_redis_events.dev.servers import RedisServer, free_port
from oprc_redis_events.protocol.decode import ReceivedTrigger, decode_trigger


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    client.script_flush()
    client.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def redis_cluster_server() -> Iterator[RedisCluster]:
    """A 3-primary Redis Cluster on loopback, shared by the tests (no replicas: tests that
    reshard or fail over start their own :class:`RedisCluster`)."""
    with RedisCluster(primaries=3) as cluster:
        yield cluster


@pytest.fixture
def cluster_url(redis_cluster_server: RedisCluster) -> Iterator[str]:
    """The seed URL of the shared cluster, emptied (every primary) and scripts flushed."""
    for port in redis_cluster_server.primary_ports():
        with redis_cluster_server.client(port) as c:
            c.flushall()
            c.script_flush()
    yield redis_cluster_server.url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings.from_env({}, redis_url=redis_url)


@pytest.fixture
def store(redis_url: str, settings: Settings) -> Iterator[ObjectStore]:
    s = ObjectStore(redis.Redis.from_url(redis_url), settings)
    yield s
    s.close()


class Inbox:
    """Collects triggers received by a Zenoh subscriber."""

    def __init__(self) -> None:
        self.items: list[ReceivedTrigger] = []
        self.raw: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, sample: Any) -> None:
        key, body = str(sample.key_expr), sample.payload.to_bytes()
        with self._lock:
            self.raw.append((key, body))
            self.items.append(decode_trigger(key, body))

    def wait_for(self, count: int, timeout: float = 15.0) -> list[ReceivedTrigger]:
        deadline = time.monotonic() + timeout
        while len(self.items) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.items)


class ZenohHub:
    """An embedded router on a free loopback port, with helpers to attach sessions."""

    def __init__(self, endpoint: str | None = None) -> None:
        self.endpoint = endpoint or f"tcp/127.0.0.1:{free_port()}"
        self.settings = Settings.from_env({})
        self.router = open_session(
            self.settings, mode="router", listen=(self.endpoint,), connect=()
        )
        self.sessions: list[Any] = []
        self.subscribers: list[Any] = []

    def session(self) -> Any:
        session = open_session(self.settings, mode="client", connect=(self.endpoint,), listen=())
        self.sessions.append(session)
        return session

    def subscribe(self, key: str = "oprc/**") -> Inbox:
        inbox = Inbox()
        session = self.session()
        self.subscribers.append(session.declare_subscriber(key, inbox))
        time.sleep(0.3)  # let the subscription propagate to the router
        return inbox

    def close(self) -> None:
        for sub in self.subscribers:
            sub.undeclare()
        for session in self.sessions:
            session.close()
        self.router.close()


@pytest.fixture
def zenoh_hub() -> Iterator[ZenohHub]:
    hub = ZenohHub()
    yield hub
    hub.close()


@pytest.fixture
def wait() -> Callable[[Callable[[], bool], float], bool]:
    def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    return _wait


__all__ = ["Inbox", "ZenohHub", "zenoh"]


SERVER_FIXTURES = {
    "redis_server",
    "redis_url",
    "client",
    "store",
    "zenoh_hub",
    "redis_cluster_server",
    "cluster_url",
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """The quick tier (``-m quick``) promises no server: hold its tests to it."""
    if item.get_closest_marker("quick") is not None:
        used = SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
        if used:
            pytest.fail(f"a quick test may not use {', '.join(sorted(used))}")


#: the platform's Python SDK, for the interop tests (tests/interop/)
SDK = "oaas-sdk2-py==0.3.6"


@pytest.fixture(scope="session")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv of its own with the SDK installed (once per session); skipped, saying why,
    where it cannot be installed."""
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the SDK's oprc-py wheel is built for CPython 3.11")
    made = Path(__file__).resolve().parent.parent / ".venv-sdk"  # by `make sdk`
    if (made / ".installed").exists() and _sdk_version(made / "bin" / "python") == SDK:
        return made / "bin" / "python"
    home = tmp_path_factory.mktemp("sdk-venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    out = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", SDK],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        pytest.skip(f"cannot install {SDK}: {out.stderr.strip()[-300:]}")
    return python


def _sdk_version(python: Path) -> str:
    """``oaas-sdk2-py==<version>`` as installed for ``python``, or "" when it is not."""
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('oaas-sdk2-py'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return f"oaas-sdk2-py=={out.stdout.strip()}" if out.returncode == 0 else ""
