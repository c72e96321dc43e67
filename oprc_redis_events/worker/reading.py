"""Reading the outboxes a worker owns: new entries in one XREADGROUP, pending ones to retry.

A mixin of :class:`~oprc_redis_events.worker.loop.Worker`.  One blocking XREADGROUP reads
every owned partition that is not waiting for a retry; a partition whose failed entry is
due is re-read from its pending entries first.  One outbox of the wrong type fails the
whole XREADGROUP, so that read is followed by a TYPE of each stream: the culprit is
dropped as broken (and tried again later) and the others are read on the next turn.

On a Redis Cluster a command may not span hash slots (CROSSSLOT, even for two slots of
one node), and each partition has a slot of its own, so the worker reads each partition
with its own XREADGROUP, without BLOCK, all of them in one pipeline that redis-py splits
per node and sends to the nodes concurrently (one round trip per node, whichever node
serves a slot now: redis-py follows MOVED/ASK and regroups on every turn).  An idle worker
polls, waiting ``POLL_MIN_S`` after a turn that read nothing, doubling up to
``POLL_MAX_S`` (and never more than ``block_ms``).  A partition whose read fails alone is
blamed alone (:meth:`on_partition`).
"""

from __future__ import annotations

import time
from collections import defaultdict

import redis
import redis.asyncio as aredis

from ..protocol.keys import PartitionKeys, as_text
from .batch_handling import BatchHandling
from .broken import is_server_wide, pipelined
from .discovery import PartitionState
from .waking import Read, WakeableRead, entries

__all__ = ["POLL_MAX_S", "POLL_MIN_S", "OutboxReading"]

#: on a cluster, the wait after a turn that read nothing; it doubles while nothing comes
POLL_MIN_S = 0.005
#: ... up to this (or ``block_ms``, when that is shorter)
POLL_MAX_S = 0.1


class OutboxReading(BatchHandling):
    """The worker's reads (see the module docstring)."""

    block_ms: int
    _last_turn: float  # when the loop last turned (liveness)
    _poll_s: float = POLL_MIN_S

    @property
    def cluster(self) -> bool:
        """Whether the worker reads a Redis Cluster (per partition) or one Redis."""
        return isinstance(self.client, aredis.RedisCluster)

    async def _step(self, *, block: bool) -> int:
        await self._flush_acks()
        await self._close_due_batches()
        now = time.monotonic()
        due = [s for s, st in self.states.items() if st.retry_at is not None and st.retry_at <= now]
        handled = await self._read_pending(due) if due else 0
        reading = {s: ">" for s, st in self.states.items() if st.retry_at is None}
        block_ms = self._block_ms(now) if block else None
        if not reading:
            await self._sleep((block_ms or 0) / 1000, self._states_changed)
            return handled
        if self.cluster:
            read = await self._read_each(reading)
            await self._idle(bool(read), block_ms)
        else:
            read = await self._read_new(reading, block_ms)
        by_stream: dict[str, list[tuple[str, dict[bytes, bytes]]]] = defaultdict(list)
        for stream, entry_id, fields in read:
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

    async def _read_pending(self, streams: list[str]) -> int:
        """Read our pending entries of ``streams`` again (a partition just taken, a failed
        entry due again, Redis back): the first page of each in one pipeline (on a cluster,
        one per node), then, alone, what a partition holds beyond it (held batches)."""
        # Our pending entries include deferred acks: settle them first, or they would be
        # read (and sent) again.
        await self._flush_acks(set(streams), wait=True)
        states = {s: st for s in streams if (st := self.states.get(s)) is not None}
        for state in states.values():  # (settling them broke those not there)
            state.retry_at = None
        names, s = list(states), self.settings
        replies = await pipelined(
            self.client,
            len(names),
            lambda target, i: target.xreadgroup(
                s.group, s.consumer, {names[i]: "0"}, count=s.batch_size
            ),
        )
        handled = 0
        for stream, reply in zip(names, replies, strict=True):
            if self.states.get(stream) is not states[stream]:
                continue  # released meanwhile: its entries stay pending, for the new owner
            async with self.on_partition(stream):
                if isinstance(reply, Exception):
                    raise reply
                handled += await self._pending_pages(stream, states[stream], entries(reply))
        return handled

    async def _pending_pages(self, stream: str, state: PartitionState, pending: list[Read]) -> int:
        """Handle a page of ``stream``'s pending entries, and read and handle the next while
        the page was full (held entries may be more than one read's worth)."""
        handled = 0
        while True:
            handled += await self._handle(state.keys, [(i, f) for _, i, f in pending])
            if len(pending) < self.settings.batch_size or self.states.get(stream) is not state:
                break
            if state.retry_at is not None:  # it failed again: read again later
                break
            pending = await self._xreadgroup({stream: pending[-1][1]}, block_ms=None)
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

    async def _read_each(
        self, reading: dict[str, str]
    ) -> list[tuple[str, str, dict[bytes, bytes]]]:
        """Cluster: one XREADGROUP per partition, in one pipeline (one round trip per node).
        A partition whose read failed is blamed alone; an error about a node (unreachable,
        a slot moving) ends the turn."""
        pipe = self.client.pipeline(transaction=False)
        for stream in reading:
            pipe.xreadgroup(
                self.settings.group,
                self.settings.consumer,
                {stream: ">"},
                count=self.settings.batch_size,
            )
        replies = await pipe.execute(raise_on_error=False)
        found: list[Read] = []
        for stream, reply in zip(reading, replies, strict=True):
            if isinstance(reply, BaseException):
                await self._read_failed(stream, reply)
            else:
                found += entries(reply)
        return found

    async def _read_failed(self, stream: str, err: BaseException) -> None:
        if not isinstance(err, redis.ResponseError) or is_server_wide(err):
            raise err
        async with self.on_partition(stream):  # a key of the partition: blame it alone
            raise err

    async def _idle(self, read: bool, block_ms: int | None) -> None:
        """Cluster: wait before the next poll when nothing came (see the module docstring)."""
        if read or block_ms is None:
            self._poll_s = POLL_MIN_S
            return
        await self._sleep(min(self._poll_s, block_ms / 1000), self._states_changed)
        self._poll_s = min(self._poll_s * 2, POLL_MAX_S)

    def _block_ms(self, now: float) -> int:
        waits = [st.retry_at - now for st in self.states.values() if st.retry_at is not None]
        closing = self.batches.next_due()
        if closing is not None:
            waits.append(closing - now)
        soonest = min(waits, default=self.block_ms / 1000)
        return max(1, min(self.block_ms, int(soonest * 1000)))

    async def _unavailable(self, err: Exception, backoff: float) -> float:
        """Wait out a Redis (or a cluster's slot, or primary) that cannot be used; then
        re-read our pending entries (a read whose reply was lost left some there); return
        the next backoff."""
        self._last_turn = time.monotonic()
        self.problems.warning(
            ("loop", "redis"), "Redis unavailable (%s); retrying in %.1fs", err, backoff
        )
        await self._sleep(backoff)
        for state in self.states.values():
            state.retry_at = state.retry_at or time.monotonic()
        return min(backoff * 2, 5.0)

    async def _close_blocking(self) -> None:
        if self._blocking is not None:
            await self._blocking.aclose()

    async def _xreadgroup(
        self, streams: dict[str, str], *, block_ms: int | None
    ) -> list[tuple[str, str, dict[bytes, bytes]]]:
        if not self.cluster:  # on the connection maintenance can wake (when it blocks)
            if self._blocking is None:
                self._blocking = WakeableRead(self.client)
            s, blocking = self.settings, self._blocking
            read: list[Read] = await blocking.xreadgroup(
                s.group, s.consumer, streams, s.batch_size, block_ms
            )
            return read
        reply = await self.client.xreadgroup(
            self.settings.group,
            self.settings.consumer,
            streams,  # type: ignore[arg-type]
            count=self.settings.batch_size,
            block=block_ms,
        )
        return entries(reply)
