"""The dispatch loop's blocking read, on a connection of its own that can be woken and
sent directly; and the heap frozen at start, out of the garbage collector's way.

On one Redis the loop waits in a blocking ``XREADGROUP`` on the outboxes it owns.  Redis
ends a ``BLOCK`` that saw no entry only at its server tick (``hz`` 10: every 100 ms), so
a partition taken meanwhile would wait that long for its first read.  :class:`WakeableRead`
sends the blocking reads on one connection whose ``CLIENT ID`` it knows, and
:meth:`WakeableRead.wake` ends the wait at once with ``CLIENT UNBLOCK`` (the read returns
as if it had timed out: nothing is read, nothing is lost).  A user whose ACL refuses either
command is never woken: its reads end at their timeout, as before.

A full collection of the worker's heap (Zenoh, protobuf, redis-py loaded) took ~100 ms on
a loaded 2-core machine, and every collection stops the event loop for a time that grows with
the objects it walks (about 1-2 us each here: the objects they refer to are rarely in the
cache).  In a process of its own (``Worker.run()``, the CLI; Python 3.11 to 3.13, measured on
3.11) the worker therefore keeps the collector's work small and its pauses short
(``bench/loop_steps.py``, README Latency):
:func:`freeze_loaded_heap` moves what is loaded at start out of the collections, collects the
youngest generation after 200 new objects instead of 700 (up to 1.5 ms a collection at 1,000
writes/s, 0.3-0.8 ms after) and leaves the oldest to the worker's maintenance, which freezes
what serves its partitions after its first round (:func:`freeze_warm_heap`) and then runs a
full collection in a loop step of its own after every round (:func:`collect_heap`, about once
a second: 0.3-0.7 ms), instead of the collector's own full collections (1.1-1.6 ms).
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio as aredis
from hiredis import pack_command

from ..lua.direct import direct_usable
from ..protocol.keys import as_text

__all__ = [
    "Read",
    "WakeableRead",
    "collect_heap",
    "entries",
    "freeze_loaded_heap",
    "freeze_warm_heap",
    "raw_entries",
]

#: an entry read: (stream, entry id, fields)
Read = tuple[str, str, dict[bytes, bytes]]


def _stream_items(reply: Any) -> Iterable[tuple[Any, Any]]:
    """redis-py's XREADGROUP reply as (stream, entries) pairs.

    RESP2 gives ``[[stream, entries], ...]``; RESP3 gives ``{stream: [entries]}``.
    """
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(stream, value[0] if value else []) for stream, value in reply.items()]
    return [(item[0], item[1]) for item in reply]


def entries(reply: Any) -> list[Read]:
    """redis-py's XREADGROUP reply as (stream, entry id, fields) triples."""
    return [
        (as_text(stream), as_text(entry_id), fields or {})
        for stream, entries in _stream_items(reply)
        for entry_id, fields in entries
    ]


def raw_entries(reply: Any) -> list[Read]:
    """XREADGROUP's reply as Redis sends it (RESP2: ``[[stream, entries], ...]``, RESP3:
    ``{stream: entries}``, an entry ``[id, [field, value, ...]]``, its fields nil when it
    was deleted) as (stream, entry id, fields) triples."""
    if not reply:
        return []
    out: list[Read] = []
    for item in reply.items() if isinstance(reply, dict) else reply:
        stream = as_text(item[0])
        for entry_id, flat in item[1]:
            fields = dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}
            out.append((stream, as_text(entry_id), fields))
    return out


#: objects allocated (less those freed) that start a collection of the youngest generation
YOUNG_THRESHOLD = 200
#: collections of the middle generation before the collector collects the oldest itself:
#: never in practice (the maintenance does, see :func:`collect_heap`)
OLDEST_THRESHOLD = 1_000_000_000


def freeze_loaded_heap() -> bool:
    """Collect once, then keep what is left out of every later collection.  Before Python
    3.14 (a generational collector, as measured): collect the youngest generation after
    :data:`YOUNG_THRESHOLD` new objects, leave the oldest to :func:`collect_heap` and
    return True; from 3.14 (an incremental collector, which reads these thresholds
    otherwise) leave the thresholds alone and return False."""
    import zenoh  # noqa: F401  (loaded before the freeze)

    gc.collect()
    gc.freeze()
    if sys.version_info >= (3, 14):
        return False
    gc.set_threshold(YOUNG_THRESHOLD, gc.get_threshold()[1], OLDEST_THRESHOLD)
    return True


def freeze_warm_heap() -> None:
    """After the worker's first round: what it made to serve its partitions (connections,
    tasks, leases, caches) joins the frozen heap.  What of it later becomes garbage in a
    reference cycle is never collected: a bounded, one-time set."""
    gc.collect()
    gc.freeze()


def collect_heap() -> None:
    """A full collection of what is not frozen (the maintenance's, once per round)."""
    gc.collect()


class WakeableRead:
    """Blocking reads of one loop, and the means to end the one in progress."""

    def __init__(self, client: aredis.Redis) -> None:
        self.client = client
        self.reader = client.client()  # one connection of the same pool, kept
        self._id: int | None = None  # that connection's CLIENT ID (0: unknown for good)
        self._hooked: Any = None
        self.direct = direct_usable(client)  # as the write script's calls (UTF-8 names)

    async def xreadgroup(
        self, group: str, consumer: str, streams: dict[str, str], count: int, block: int | None
    ) -> list[Read]:
        """XREADGROUP on our connection; ``block`` None: without BLOCK."""
        connection: Any = self.reader.connection
        if connection is not None and not connection.is_connected:
            self._id = None  # a new connection, a new id (ids restart with the server)
        if self._id is None:
            await self._learn_id()  # connects first: the read can be woken from its start
            connection = self.reader.connection
        try:
            if not self.direct or connection is None:
                reply = await self.reader.xreadgroup(
                    group,
                    consumer,
                    streams,  # type: ignore[arg-type]
                    count=count,
                    block=block,
                )
                return entries(reply)
            return raw_entries(
                await self._direct(connection, group, consumer, streams, count, block)
            )
        except redis.ResponseError:
            raise  # an error reply: the connection is in step
        except BaseException:
            self._id = None  # never CLIENT UNBLOCK an id another client may get next
            raise

    @staticmethod
    async def _direct(
        connection: Any,
        group: str,
        consumer: str,
        streams: dict[str, str],
        count: int,
        block: int | None,
    ) -> Any:
        names = list(streams)
        args: list[Any] = ["XREADGROUP", "GROUP", group, consumer, "COUNT", count]
        if block is not None:
            args += ["BLOCK", block]
        packed = pack_command((*args, "STREAMS", *names, *(streams[n] for n in names)))
        try:
            await connection.send_packed_command([packed])
            return await connection.read_response()
        except redis.ResponseError:
            raise
        except BaseException:
            await connection.disconnect(nowait=True)  # its reply may still come: drop it
            raise

    async def _learn_id(self) -> None:
        try:
            self._id = int(await self.reader.client_id())
        except redis.ResponseError:  # refused by the ACL, or a proxy without CLIENT ID
            self._id = 0
        connection = self.reader.connection
        if connection is not None and connection is not self._hooked:
            connection.register_connect_callback(self._reconnected)  # type: ignore[no-untyped-call]
            self._hooked = connection

    def _reconnected(self, connection: Any) -> None:
        self._id = None  # a new connection, a new id: learnt before the next read

    async def wake(self) -> None:
        """End the blocking read in progress, if any (a hint: errors are ignored)."""
        if self._id:
            with contextlib.suppress(redis.RedisError, OSError):
                await self.client.client_unblock(self._id)

    async def aclose(self) -> None:
        with contextlib.suppress(redis.RedisError, OSError):
            await self.reader.aclose()
