"""The worker's upkeep of its partitions: discovery, leases, claims, lag, trimming, progress.

A mixin of :class:`~oprc_redis_events.worker.Worker`, run by its maintenance task every
``discover_interval`` (and inline in burst mode), beside the loop that reads and dispatches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import redis
import redis.asyncio as aredis

from .config import Settings
from .errors import InvalidIdError
from .keys import PARTITIONS_KEY, PREFIX, PartitionKeys, as_text
from .leases import Leases
from .retention import trim_outbox
from .stats import WorkerStats

__all__ = ["PartitionMaintenance", "PartitionState"]

log = logging.getLogger("oprc_redis_events.worker")

TRIM_INTERVAL_S = 5.0
PROGRESS_INTERVAL_S = 30.0
RESCAN_INTERVAL_S = 30.0


@dataclass
class PartitionState:
    keys: PartitionKeys
    retry_at: float | None = None  # set: re-read our pending entries then; None: read new ones


class PartitionMaintenance:
    """Keeps ``partitions`` (all known outboxes) and ``states`` (the ones we own) current."""

    client: aredis.Redis
    settings: Settings
    stats: WorkerStats
    leases: Leases
    partitions: dict[str, PartitionKeys]
    states: dict[str, PartitionState]
    lag: dict[str, int]
    discover_interval: float
    metrics_port: int | None
    _stop: asyncio.Event
    _last_claim: float
    _last_trim: float
    _last_progress: float
    _last_counts: tuple[int, ...]
    _last_scan: float
    _group_start: str | None = None  # with from_now: the id our new groups start after

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _maintain_forever(self) -> None:
        backoff = self.discover_interval
        while not self._stop.is_set():
            try:
                await self.maintain()
                backoff = self.discover_interval
            except (redis.ConnectionError, redis.TimeoutError) as err:
                log.warning("maintenance: Redis unavailable (%s)", err)
                backoff = min(backoff * 2, 5.0)
            except Exception:  # keep serving; the next round may succeed
                log.exception("maintenance failed")
            await self._sleep(backoff)

    async def maintain(self) -> None:
        """Discover partitions, rebalance leases, claim abandoned entries, trim."""
        await self.discover()
        busy = {s for s, st in self.states.items() if st.retry_at is not None}
        for partition in await self.leases.rebalance(self.partitions, busy):
            self.states[partition.outbox] = PartitionState(partition)
            await self._claim(partition.outbox, force=True)
        for stream in [s for s in self.states if s not in self.leases.owned]:
            del self.states[stream]
        now = time.monotonic()
        if now - self._last_claim >= self.settings.claim_idle_ms / 2000:
            self._last_claim = now
            for stream in list(self.states):
                await self._claim(stream)
        progress_due = now - self._last_progress >= PROGRESS_INTERVAL_S
        if progress_due or self.metrics_port is not None:  # lag is for these two only
            await self._measure_lag()
        if progress_due:
            self._last_progress = now
            self._log_progress()
        if now - self._last_trim >= TRIM_INTERVAL_S:
            self._last_trim = now
            for stream in list(self.states):
                self.stats.trimmed += await trim_outbox(self.client, stream)

    async def _measure_lag(self) -> None:
        lag: dict[str, int] = {}
        for stream, state in list(self.states.items()):
            for group in await self.client.xinfo_groups(stream):
                if as_text(group["name"]) == self.settings.group:
                    lag[state.keys.member] = int(group.get("lag") or 0)
        self.lag = lag

    async def discover(self) -> None:
        """Find partition outboxes and make sure our consumer group exists on each (reading
        the whole retained outbox, or with from_now what was written after our start)."""
        if self.settings.from_now and self._group_start is None:
            seconds, micros = await self.client.time()  # the first discovery: our start
            self._group_start = f"{seconds * 1000 + micros // 1000}-0"
        found: set[str] = set()
        for member in await self.client.smembers(PARTITIONS_KEY):
            try:
                found.add(PartitionKeys.from_member(as_text(member)).outbox)
            except (InvalidIdError, ValueError):
                log.warning("ignoring malformed member %r of %s", member, PARTITIONS_KEY)
        if time.monotonic() - self._last_scan >= RESCAN_INTERVAL_S:
            # The registry is a hint (a writer that lost it, a stream made by hand): a
            # SCAN now and then finds every outbox.
            async for key in self.client.scan_iter(match=f"{PREFIX}:{{*}}:outbox", _type="stream"):
                found.add(as_text(key))
            self._last_scan = time.monotonic()
        for stream in sorted(found - self.partitions.keys()):
            try:
                await self.client.xgroup_create(
                    stream, self.settings.group, id=self._group_start or "0", mkstream=True
                )
            except redis.ResponseError as err:
                if "BUSYGROUP" not in str(err):
                    raise
            self.partitions[stream] = PartitionKeys.from_key(stream)
            log.debug("found partition %s", self.partitions[stream].member)

    async def _claim(self, stream: str, *, force: bool = False) -> None:
        """Take over entries other consumers left pending longer than ``claim_idle_ms``;
        they are then read, in order, by our pending read."""
        start, claimed = "0-0", 0
        while True:
            reply = await self.client.xautoclaim(
                stream,
                self.settings.group,
                self.settings.consumer,
                min_idle_time=self.settings.claim_idle_ms,
                start_id=start,
                count=self.settings.batch_size,
            )
            start = as_text(reply[0])
            claimed += len(reply[1])
            if start == "0-0":
                break
        state = self.states.get(stream)
        if state is not None and (claimed or force):
            state.retry_at = state.retry_at or time.monotonic()
        if claimed:
            self.stats.claimed += claimed
            log.info("claimed %d entries of %s left pending by another worker", claimed, stream)

    def _log_progress(self) -> None:
        """One line a person can read, when something happened since the last one."""
        s = self.stats
        counts = (s.entries_read, s.triggers_sent, s.depth_stops, s.retries, s.dead_letters)
        if counts == self._last_counts:
            return
        previous = self._last_counts
        self._last_counts = counts
        lag = sum(self.lag.values())
        log.info(
            "progress: +%d entries, +%d triggers sent (total %d), %d partition(s), lag %d, "
            "depth stops %d, retries %d, dead letters %d",
            counts[0] - previous[0],
            counts[1] - previous[1],
            counts[1],
            len(self.states),
            lag,
            s.depth_stops,
            s.retries,
            s.dead_letters,
        )

    def _forget_partitions(self) -> None:
        self.partitions.clear()
        self.states.clear()
        self.leases.owned.clear()
        self._last_scan = -RESCAN_INTERVAL_S
