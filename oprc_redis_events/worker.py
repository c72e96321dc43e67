"""The worker: outbox streams in, Zenoh PUTs out, acknowledged only after the PUTs.

One ``Worker`` serves every partition it discovers (``oprc:partitions`` and a SCAN for
``oprc:{*}:outbox``), reading them with one consumer group so that several workers share
the load.  Per batch it decodes the entries, builds one :class:`~.wire.Dispatch` per
(event, target), hands them to the publisher in write order, then XACKs.  Entries that
can never be dispatched go to the partition's dead-letter stream with the reason.

``run()`` is the process (signals stop it gracefully); ``run_async()`` is the core, which
tests embed; ``burst=True`` returns once the outbox is drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aredis

from .config import Settings, redact_url
from .errors import InvalidIdError, OprcEventsError
from .keys import PARTITIONS_KEY, PREFIX, PartitionKeys
from .outbox import OutboxEntry, PoisonEntryError, decode_entry
from .publisher import Publisher, ZenohPublisher
from .wire import DELIVERY_MODES, Delivery, Dispatch, build_dispatch

__all__ = ["Worker", "WorkerStats"]

log = logging.getLogger("oprc_redis_events.worker")

RawEntry = tuple[PartitionKeys, str, dict[bytes, bytes]]


@dataclass
class WorkerStats:
    """Counters since the worker started."""

    entries_read: int = 0
    events_read: int = 0
    triggers_sent: int = 0
    depth_stops: int = 0
    dead_letters: int = 0
    publish_failures: int = 0
    claimed: int = 0
    sent_by_target: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))


def _stream_items(reply: Any) -> Iterable[tuple[Any, Any]]:
    """XREADGROUP's reply as (stream, entries) pairs.

    RESP2 gives ``[[stream, entries], ...]``; RESP3 gives ``{stream: [entries]}``.
    """
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(stream, value[0] if value else []) for stream, value in reply.items()]
    return [(item[0], item[1]) for item in reply]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Worker:
    """Dispatches outbox entries to Zenoh (see the module docstring)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        client: aredis.Redis | None = None,
        publisher: Publisher | None = None,
        delivery: Delivery = "put",
        block_ms: int = 500,
        discover_interval: float = 1.0,
        claim_idle_ms: int = 30_000,
    ) -> None:
        if delivery not in DELIVERY_MODES:
            raise OprcEventsError(f"delivery must be one of {', '.join(DELIVERY_MODES)}")
        self.settings = settings or Settings.from_env()
        self.client = client or aredis.Redis.from_url(self.settings.redis_url)
        self.publisher = publisher
        self.delivery = delivery
        self.block_ms = block_ms
        self.discover_interval = discover_interval
        self.claim_idle_ms = claim_idle_ms
        self.stats = WorkerStats()
        self.partitions: dict[str, PartitionKeys] = {}  # outbox stream -> partition
        self._read_pending = True  # first read: our own pending entries (ID 0)
        self._last_discover = 0.0
        self._last_claim = 0.0
        self._stop = asyncio.Event()

    def __repr__(self) -> str:
        return f"Worker({redact_url(self.settings.redis_url)!r}, group={self.settings.group!r})"

    # -- lifecycle ----------------------------------------------------------------------

    def run(self) -> None:
        """Run until SIGTERM or SIGINT, then finish the batch in hand and close."""
        asyncio.run(self._main())

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        await self.run_async()

    def stop(self) -> None:
        """Ask the loop to stop after the batch in hand."""
        log.info("stopping: finishing the batch in hand")
        self._stop.set()

    async def run_async(self, *, burst: bool = False) -> WorkerStats:
        """The worker loop; with ``burst`` it returns once nothing is left to read."""
        owned = self.publisher is None
        if self.publisher is None:
            from .zenoh_session import open_session

            self.publisher = ZenohPublisher(open_session(self.settings), owned=True)
        log.info(
            "worker started: redis=%s group=%s consumer=%s delivery=%s format=%s",
            redact_url(self.settings.redis_url),
            self.settings.group,
            self.settings.consumer,
            self.delivery,
            self.settings.payload_format,
        )
        try:
            await self._loop(burst)
        finally:
            if owned and self.publisher is not None:
                self.publisher.close()
                self.publisher = None
            await self.client.aclose()
            log.info("worker stopped: %s", self.summary())
        return self.stats

    def summary(self) -> str:
        s = self.stats
        return (
            f"entries={s.entries_read} events={s.events_read} triggers_sent={s.triggers_sent} "
            f"depth_stops={s.depth_stops} dead_letters={s.dead_letters} claimed={s.claimed}"
        )

    async def _loop(self, burst: bool) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                handled = await self._step(block=not burst)
                backoff = 0.1
            except (redis.ConnectionError, redis.TimeoutError, OprcEventsError) as err:
                log.warning("worker step failed (%s); retrying in %.1fs", err, backoff)
                self.stats.publish_failures += 1
                self._read_pending = True
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if burst and not handled:
                return

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _step(self, *, block: bool) -> int:
        now = time.monotonic()
        if now - self._last_discover >= self.discover_interval:
            await self.discover()
            self._last_discover = now
        if not self.partitions:
            await self._sleep(self.block_ms / 1000)
            return 0
        # Read before claiming: the pending read (ID 0) would return what we just claimed.
        batch = await self._read(block)
        if now - self._last_claim >= self.claim_idle_ms / 1000:
            batch += await self._claim()
            self._last_claim = now
        if batch:
            await self.handle(batch)
        return len(batch)

    # -- partitions -----------------------------------------------------------------------

    async def discover(self) -> None:
        """Find partition outboxes and make sure our consumer group exists on each."""
        found: set[str] = set()
        for member in await self.client.smembers(PARTITIONS_KEY):
            try:
                found.add(PartitionKeys.from_member(_text(member)).outbox)
            except (InvalidIdError, ValueError):
                log.warning("ignoring malformed member %r of %s", member, PARTITIONS_KEY)
        if not self.partitions:
            async for key in self.client.scan_iter(match=f"{PREFIX}:{{*}}:outbox", _type="stream"):
                found.add(_text(key))
        for stream in sorted(found - self.partitions.keys()):
            try:
                await self.client.xgroup_create(stream, self.settings.group, id="0", mkstream=True)
            except redis.ResponseError as err:
                if "BUSYGROUP" not in str(err):
                    raise
            self.partitions[stream] = PartitionKeys.from_key(stream)
            log.info("serving partition %s", self.partitions[stream].member)

    # -- reading --------------------------------------------------------------------------

    def _entries(self, reply: Any) -> list[RawEntry]:
        out: list[RawEntry] = []
        for stream, entries in _stream_items(reply):
            name = _text(stream)
            partition = self.partitions[name]
            for entry_id, fields in entries:
                eid = _text(entry_id)
                out.append((partition, eid, fields or {}))
        return out

    async def _read(self, block: bool) -> list[RawEntry]:
        """Our own pending entries first (after a start or a failure), then new ones."""
        if self._read_pending:
            entries = await self._xreadgroup("0", block=False)
            if entries:
                return entries
            self._read_pending = False
        return await self._xreadgroup(">", block=block)

    async def _xreadgroup(self, start: str, *, block: bool) -> list[RawEntry]:
        reply = await self.client.xreadgroup(
            self.settings.group,
            self.settings.consumer,
            dict.fromkeys(self.partitions, start),
            count=self.settings.batch_size,
            block=self.block_ms if block else None,
        )
        return self._entries(reply)

    async def _claim(self) -> list[RawEntry]:
        """Take over entries another consumer left pending for longer than the idle time."""
        out: list[RawEntry] = []
        for stream, partition in self.partitions.items():
            reply = await self.client.xautoclaim(
                stream,
                self.settings.group,
                self.settings.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id="0-0",
                count=self.settings.batch_size,
            )
            claimed, deleted = reply[1], (reply[2] if len(reply) > 2 else [])
            for entry_id, fields in claimed:
                eid = _text(entry_id)
                out.append((partition, eid, fields or {}))
            if deleted:
                await self.client.xack(stream, self.settings.group, *deleted)
        if out:
            self.stats.claimed += len(out)
            log.info("claimed %d entries left pending by other consumers", len(out))
        return out

    # -- handling -------------------------------------------------------------------------

    def plan(self, entry: OutboxEntry) -> list[Dispatch]:
        """The dispatches of one decoded entry ([] when its depth is at the limit)."""
        if entry.depth >= self.settings.max_trigger_depth:
            stopped = sum(len(e.targets) for e in entry.events)
            self.stats.depth_stops += stopped
            log.warning(
                "depth limit: entry %s of %s at depth %d >= max %d; %d trigger(s) not dispatched",
                entry.entry_id,
                entry.partition.member,
                entry.depth,
                self.settings.max_trigger_depth,
                stopped,
            )
            return []
        return [
            build_dispatch(
                entry,
                event,
                i,
                payload_format=self.settings.payload_format,
                delivery=self.delivery,
            )
            for event in entry.events
            for i in range(len(event.targets))
        ]

    async def handle(self, batch: list[RawEntry]) -> None:
        """Dispatch a batch in order, then dead-letter the poison and acknowledge the rest."""
        dispatches: list[Dispatch] = []
        dead: list[tuple[RawEntry, str]] = []
        for raw in batch:
            partition, entry_id, fields = raw
            self.stats.entries_read += 1
            try:
                entry = decode_entry(partition, entry_id, fields)
                self.stats.events_read += len(entry.events)
                dispatches += self.plan(entry)
            except (PoisonEntryError, InvalidIdError) as err:
                dead.append((raw, str(err)))
        if dispatches:
            await asyncio.to_thread(self._publish, dispatches)
        await self._finish(batch, dead)

    def _publish(self, dispatches: list[Dispatch]) -> None:
        assert self.publisher is not None
        for d in dispatches:
            self.publisher.put(d.key, d.body)
            self.stats.triggers_sent += 1
            self.stats.sent_by_target[(d.target.cls_id, d.target.fn_id)] += 1

    async def _finish(self, batch: list[RawEntry], dead: list[tuple[RawEntry, str]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for (partition, entry_id, fields), reason in dead:
            log.error("dead-lettering entry %s of %s: %s", entry_id, partition.member, reason)
            record: dict[Any, Any] = dict(fields)
            record.update(
                {
                    "dlq:reason": reason,
                    "dlq:source_id": entry_id,
                    "dlq:failed_at": str(int(time.time() * 1000)),
                }
            )
            pipe.xadd(partition.dead_letters, record)
        acks: dict[str, list[str]] = defaultdict(list)
        for partition, entry_id, _ in batch:
            acks[partition.outbox].append(entry_id)
        for stream, ids in acks.items():
            pipe.xack(stream, self.settings.group, *ids)
        await pipe.execute()
        self.stats.dead_letters += len(dead)
