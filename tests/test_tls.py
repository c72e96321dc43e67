"""TLS to Redis: a ``redis-server`` listening with TLS only (no plain port) and requiring a
client certificate, with certificates made by openssl for the test; ``rediss://`` URLs
with redis-py's ``ssl_*`` query options reach it from the store (sync and asyncio), the
wrapper, the worker, keyspace capture, the CLI and the cluster client."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from oprc_redis_events import AsyncObjectStore, EventedRedis, ObjectStore, Settings
from oprc_redis_events.connect.redis_client import redis_client
from oprc_redis_events.dev.certs import Certificates, make_certificates
from oprc_redis_events.dev.servers import RedisServer, free_port
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher

from .conftest import ZenohHub
from .helpers import RunningWorker, events, watch_all
from .test_cli_errors import assert_one_error_line, env

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_server(certificates: Certificates) -> Iterator[RedisServer]:
    """TLS only (``--port 0 --tls-port P``), client certificates required."""
    with RedisServer(tls=certificates, tls_auth_clients=True) as server:
        yield server


@pytest.fixture
def tls_url(tls_server: RedisServer) -> Iterator[str]:
    assert tls_server.url.startswith("rediss://") and "ssl_certfile=" in tls_server.url
    with redis.Redis.from_url(tls_server.url) as admin:
        admin.flushall()
        admin.script_flush()
    yield tls_server.url


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, env=env())


def wait_until(predicate: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_writes_reach_zenoh_over_tls(tls_url: str, zenoh_hub: ZenohHub) -> None:
    """Store (sync and asyncio) and wrapper writes, and a write capture sees on the keyspace
    channel, go through the worker over TLS to a Zenoh subscriber."""
    inbox = zenoh_hub.subscribe()
    settings = Settings.from_env(
        {}, redis_url=tls_url, zenoh_connect=(zenoh_hub.endpoint,), capture="keyspace"
    )
    worker = Worker(settings, block_ms=20, discover_interval=0.05)
    running = RunningWorker(worker)
    store = ObjectStore.from_url(tls_url)
    wrapped = EventedRedis(redis_client(settings))
    try:
        store.create("orders", 0, 1, {42: b"a"}, event=watch_all([42]))
        store.update("orders", 0, 1, {42: b"b"})

        async def update_async() -> None:
            async with AsyncObjectStore.from_url(tls_url) as aio:
                await aio.update("orders", 0, 1, {42: b"c"})

        asyncio.run(update_async())
        wrapped.hset(PartitionKeys.of("orders", 0).obj("1"), "42", "d")
        assert wait_until(lambda: worker.capture is not None and worker.capture.stats.reconciles)
        with redis.Redis.from_url(tls_url) as raw:  # bypasses the library: capture reports it
            raw.hset(PartitionKeys.of("orders", 0).obj("1"), "42", "by-hand")
        got = inbox.wait_for(5, timeout=20)
    finally:
        wrapped.close()
        store.close()
        running.stop()
    assert [t.payload.original_payload for t in got] == [b"a", b"b", b"c", b"d", b"by-hand"]


def test_cli_commands_over_tls(tls_url: str) -> None:
    put = run("put", "orders", "0", "7", "42=paid", "--create", "--redis-url", tls_url)
    assert put.returncode == 0, put.stderr
    got = run("get", "orders", "0", "7", "--json", "--redis-url", tls_url)
    assert got.returncode == 0, got.stderr
    assert '"paid"' in got.stdout
    groups = run("groups", "list", "--redis-url", tls_url)
    assert groups.returncode == 0, groups.stderr


def test_a_missing_client_certificate_is_one_error_line(tls_url: str) -> None:
    without = tls_url.split("&ssl_certfile=")[0]
    message = assert_one_error_line(run("get", "orders", "0", "7", "--redis-url", without))
    assert "TLS handshake with Redis failed" in message and "ssl_certfile" in message, message


def test_a_plain_url_to_a_tls_only_server_is_one_error_line(tls_server: RedisServer) -> None:
    plain = f"redis://127.0.0.1:{tls_server.port}/0"
    message = assert_one_error_line(run("groups", "list", "--redis-url", plain))
    assert "use a rediss:// URL" in message, message


def test_an_untrusted_server_certificate_is_one_error_line(
    tls_url: str, certificates: Certificates
) -> None:
    """Trusting another certificate than the CA that signed the server's."""
    url = tls_url.replace(
        f"ssl_ca_certs={certificates.ca}", f"ssl_ca_certs={certificates.client_certificate}"
    )
    message = assert_one_error_line(run("get", "orders", "0", "7", "--redis-url", url))
    assert "certificate verify failed" in message and "ssl_ca_certs" in message, message


def test_the_cluster_client_over_tls(certificates: Certificates, tmp_path: Path) -> None:
    """A one-node Redis Cluster (every slot on it) with TLS on its client and bus ports:
    the store, the worker and the CLI with --cluster."""
    # the bus port defaults to port + 10000, which a high free port overflows: pick one
    extra = ["--cluster-enabled", "yes", "--tls-cluster", "yes", "--cluster-announce-ip",
             "127.0.0.1", "--cluster-config-file", str(tmp_path / "nodes.conf"),
             "--cluster-port", str(free_port())]  # fmt: skip
    with RedisServer(tls=certificates, tls_auth_clients=True, extra=extra) as node:
        with redis.Redis.from_url(node.url) as admin:
            admin.execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383)
            assert wait_until(lambda: admin.cluster("INFO")["cluster_state"] == "ok")
        store = ObjectStore.from_url(node.url, cluster=True)
        publisher = MemoryPublisher()
        settings = Settings.from_env({}, redis_url=node.url, cluster=True)
        running = RunningWorker(
            Worker(settings, publisher=publisher, block_ms=20, discover_interval=0.05)
        )
        try:
            store.create("orders", 0, 1, {42: b"a"}, event=watch_all([42]))
            store.update("orders", 0, 1, {42: b"b"})
            assert wait_until(lambda: len(publisher.sent) == 2)
        finally:
            running.stop()
            store.close()
        got = run("get", "orders", "0", "1", "--cluster", "--redis-url", node.url)
        assert got.returncode == 0 and "b'b'" in got.stdout, got.stderr
        with redis.cluster.RedisCluster.from_url(node.url) as client:
            assert [e[0] for e in events(client)] == ["CREATE", "UPDATE"]  # type: ignore[arg-type]
