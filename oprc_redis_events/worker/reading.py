"""Reading the outboxes a worker owns: new entries in one XREADGROUP, pending ones to retry.

A mixin of :class:`~oprc_redis_events.worker.loop.Worker`.  One XREADGROUP reads every owned
partition that is not waiting for a retry; a partition whose failed entry is due is
re-read from its pending entries first.  One outbox of the wrong type fails the whole
XREADGROUP, so that read is followed by a TYPE of each stream: the culprit is dropped as
broken (and tried again later) and the others are read on the next turn.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import redis

from ..protocol.keys import PartitionKeys, as_text
from .discovery import PartitionState
from .handling import EntryHandling

__all__ = ["OutboxReading"]


def _stream_items(reply: Any) -> Iterable[tuple[Any, Any]]:
    """XREADGROUP's reply as (stream, entries) pairs.

    RESP2 gives ``[[stream, entries], ...]``; RESP3 gives ``{stream: [entries]}``.
    """
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(stream, value[0] if value else []) for stream, value in reply.items()]
    return [(item[0], item[1]) for item in reply]


class OutboxReading(EntryHandling):
    """The worker's reads (see the module docstring)."""

    block_ms: int

    async def _step(self, *, block: bool) -> int:
        await self._flush_acks()
        now = time.monotonic()
        handled = 0
        for stream, state in list(self.states.items()):
            if state.retry_at is not None and state.retry_at <= now:
                async with self.on_partition(stream):
                    handled += await self._read_pending(stream, state)
        reading = {s: ">" for s, st in self.states.items() if st.retry_at is None}
        block_ms = self._block_ms(now) if block else None
        if not reading:
            await self._sleep((block_ms or 0) / 1000)
            return handled
        by_stream: dict[str, list[tuple[str, dict[bytes, bytes]]]] = defaultdict(list)
        for stream, entry_id, fields in await self._read_new(reading, block_ms):
            by_stream[stream].append((entry_id, fields))
        for stream, batch in by_stream.items():
            owner = self.states.get(stream)
            keys = owner.keys if owner is not None else PartitionKeys.from_key(stream)
            async with self.on_partition(stream):
                handled += await self._handle(keys, batch)
        for stream in reading:
            if stream in self.states:  # read and handled: whatever was wrong is over
                self.broken.ok(stream)
        return handled

    async def _read_pending(self, stream: str, state: PartitionState) -> int:
        # Our pending entries include deferred acks: settle them first, or they would be
        # read (and sent) again.
        await self._flush_acks(stream, wait=True)
        if stream not in self.states:  # settling them broke the partition
            return 0
        pending = await self._xreadgroup({stream: "0"}, block_ms=None)
        state.retry_at = None
        handled = await self._handle(state.keys, [(i, f) for _, i, f in pending])
        if stream in self.states:
            self.broken.ok(stream)
        return handled

    async def _read_new(
        self, reading: dict[str, str], block_ms: int | None
    ) -> list[tuple[str, str, dict[bytes, bytes]]]:
        """New entries of ``reading``; a stream of the wrong type fails the whole read, so
        it is found (TYPE), dropped as broken, and the others are read on the next turn."""
        try:
            return await self._xreadgroup(reading, block_ms=block_ms)
        except redis.ResponseError as err:
            if "WRONGTYPE" not in str(err):
                raise
            pipe = self.client.pipeline(transaction=False)
            for stream in reading:
                pipe.type(stream)
            kinds = [as_text(k) for k in await pipe.execute()]
            wrong = {s: k for s, k in zip(reading, kinds, strict=True) if k != "stream"}
            if not wrong:
                raise
            for stream, kind in wrong.items():
                self.partition_failed(stream, f"{stream} is a {kind}, not a stream")
            return []

    def _block_ms(self, now: float) -> int:
        waits = [st.retry_at - now for st in self.states.values() if st.retry_at is not None]
        soonest = min(waits, default=self.block_ms / 1000)
        return max(1, min(self.block_ms, int(soonest * 1000)))

    async def _xreadgroup(
        self, streams: dict[str, str], *, block_ms: int | None
    ) -> list[tuple[str, str, dict[bytes, bytes]]]:
        reply = await self.client.xreadgroup(
            self.settings.group,
            self.settings.consumer,
            streams,  # type: ignore[arg-type]
            count=self.settings.batch_size,
            block=block_ms,
        )
        return [
            (as_text(stream), as_text(entry_id), fields or {})
            for stream, entries in _stream_items(reply)
            for entry_id, fields in entries
        ]
