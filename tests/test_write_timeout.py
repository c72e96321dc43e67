"""A write whose reply times out (Redis busy longer than the socket timeout) may still have
been applied, with its trigger: the error says so, and how to find out."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from oprc_redis_events import AsyncObjectStore, ObjectStore, RedisUnavailableError, Settings
from oprc_redis_events.dev.servers import RedisServer, free_port
from oprc_redis_events.errors import WriteOutcomeUnknownError

from .helpers import events, watch_all

MESSAGE = (
    r"update object orders/0/1: no reply from Redis \(Timeout reading from [^)]+\), so the "
    r"write may or may not have been applied, with its triggers: read the object's version"
)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer(extra=["--enable-debug-command", "local"]) as server:
        yield server


class Busy:
    """Redis made busy for `seconds` by DEBUG SLEEP from another connection, until the end
    of the ``with`` block at least."""

    def __init__(self, server: RedisServer, seconds: float) -> None:
        self.admin = redis.Redis.from_url(server.url)
        self.thread = threading.Thread(
            target=self.admin.execute_command, args=("DEBUG", "SLEEP", seconds)
        )
        self.thread.start()
        probe = redis.Redis.from_url(server.url, socket_timeout=0.1, retry=Retry(NoBackoff(), 0))
        for _ in range(200):  # until a PING gets no answer: the sleep has begun
            try:
                probe.ping()
            except redis.TimeoutError:
                break
        probe.close()

    def __enter__(self) -> Busy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(30)
        self.admin.close()


def test_a_timed_out_write_says_it_may_have_been_applied(server: RedisServer) -> None:
    settings = Settings.from_env({}, redis_url=server.url)
    client = redis.Redis.from_url(server.url, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    with ObjectStore(client, settings) as store:
        store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
        with Busy(server, 2), pytest.raises(WriteOutcomeUnknownError, match=MESSAGE) as caught:
            store.update("orders", 0, 1, {1: b"b"})
        assert isinstance(caught.value, RedisUnavailableError)
        # ... and it was applied, trigger included, once Redis got to it
        record = store.get("orders", 0, 1)
        assert record is not None and record.entries == {1: b"b"} and record.version == 2
        assert events(store.client)[-1] == ("UPDATE", "1", b"b")


def test_a_timed_out_async_write_says_the_same(server: RedisServer) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis.from_url(
            server.url, socket_timeout=0.5, retry=AsyncRetry(NoBackoff(), 0)
        )
        async with AsyncObjectStore(client, Settings.from_env({}, redis_url=server.url)) as store:
            await store.create("orders", 0, 1, {1: b"a"})
            with Busy(server, 2), pytest.raises(WriteOutcomeUnknownError, match=MESSAGE):
                await store.update("orders", 0, 1, {1: b"b"})

    asyncio.run(main())


def test_a_write_that_could_not_connect_is_only_unavailable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with ObjectStore.from_url(url) as store:
        with pytest.raises(RedisUnavailableError, match="update object orders/0/1: Redis is un"):
            store.update("orders", 0, 1, {1: b"b"})
        with pytest.raises(RedisUnavailableError) as caught:
            store.update("orders", 0, 1, {1: b"b"})
        assert not isinstance(caught.value, WriteOutcomeUnknownError)
