"""The worker's upkeep of its partitions: leases, claims, lag, trimming, progress.

A mixin of :class:`~oprc_redis_events.worker.loop.Worker`, run by its maintenance task every
``discover_interval`` (and inline in burst mode), beside the loop that reads and
dispatches; a new outbox announced wakes it at once for a quick round (discover, take).
Discovery is in :mod:`~oprc_redis_events.worker.discovery`.  A Redis error on one
partition's keys drops that partition only (see ``on_partition``); a step that fails
for another reason is logged once (then with a count at a slow interval) and the other
steps go on.  What still escapes (the heartbeat cannot be written, say) ends the task,
which the worker's supervisor logs and restarts, or fails the worker over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from ..protocol.keys import as_text
from .broken import TOPOLOGY_ERRORS, pipelined, redis_unusable
from .discovery import PartitionDiscovery, PartitionState
from .leases import Leases
from .logonce import ThrottledLog
from .retention import trim_outboxes
from .stats import WorkerStats
from .waking import collect_heap, freeze_warm_heap

__all__ = ["PartitionMaintenance", "PartitionState"]

log = logging.getLogger("oprc_redis_events.worker.loop")

TRIM_INTERVAL_S = 5.0
PROGRESS_INTERVAL_S = 30.0


class PartitionMaintenance(PartitionDiscovery):
    """Keeps ``states`` (the partitions we own) current and the owned outboxes tidy."""

    stats: WorkerStats
    leases: Leases
    problems: ThrottledLog
    lag: dict[str, int]
    discover_interval: float
    metrics_port: int | None
    _last_claim: float
    _last_redis_ok: float
    _last_trim: float
    _last_progress: float
    _last_counts: tuple[int, ...]
    _own_heap: bool = False  # Worker.run(): the process is ours (see waking)
    _heap_warm: bool = False  # what serves our partitions was frozen

    async def _maintain_forever(self) -> None:
        """The maintenance task: Redis going away is waited out here; anything else that
        escapes a round ends the task (for the supervisor to log and restart)."""
        backoff = self.discover_interval
        quick = False
        while not self._stop.is_set():
            try:
                await self.maintain(quick=quick)
                self._last_redis_ok = time.monotonic()
                if backoff > self.discover_interval:
                    self.problems.resolved(("maintenance", "redis"))
                backoff = self.discover_interval
            except (redis.RedisError, *TOPOLOGY_ERRORS) as err:
                if not redis_unusable(err):
                    raise
                self._last_redis_ok = 0.0  # not ready until Redis answers again
                self.problems.warning(
                    ("maintenance", "redis"), "maintenance: Redis unavailable (%s)", err
                )
                backoff = min(backoff * 2, 5.0)
            if self._own_heap and not quick:
                self._tend_heap(ok=self._last_redis_ok > 0)
            quick = await self._sleep(backoff, self._wake)  # woken: a new outbox

    def _tend_heap(self, *, ok: bool) -> None:
        """In a process of its own, after each regular round: after the first that
        succeeded (``ok``), freeze what serves the partitions; after every other one (Redis
        away included), a full collection in a loop step of its own (the collector's own
        full collections are off: see :mod:`.waking`)."""
        if ok and not self._heap_warm:
            self._heap_warm = True
            freeze_warm_heap()
        else:
            asyncio.get_running_loop().call_soon(collect_heap)

    async def maintain(self, *, quick: bool = False) -> None:
        """Discover partitions, rebalance leases, claim abandoned entries, trim.  ``quick``
        (a new outbox was announced): discover and take partitions only, leaving the
        renewals, claims, lag and trimming to the regular round."""
        await self.discover()
        busy = {s for s, st in self.states.items() if st.retry_at is not None}
        busy.update(s for s in self.batches.streams() if s in self.states)  # held entries
        await self.leases.rebalance(self.partitions, busy, renew=not quick)
        for stream in [s for s in self.states if s not in self.leases.owned]:
            del self.states[stream]
            self.batches.drop(stream)  # its held entries stay pending, for the new owner
        taken = [s for s in self.leases.owned if s not in self.states]
        if taken:  # newly taken, or kept while we rediscovered
            # Claimed before the loop may read them: their older entries come first.
            await self._claim(taken)
            now = time.monotonic()
            for stream in taken:
                if stream in self.partitions and stream in self.leases.owned:  # not broken
                    self.states[stream] = PartitionState(self.leases.owned[stream], now)
            await self._wake_loop()
        if quick:
            return
        now = time.monotonic()
        if now - self._last_claim >= self.settings.claim_idle_ms / 2000:
            self._last_claim = now
            await self._optional_step("claim", lambda: self._claim(list(self.states)))
        progress_due = now - self._last_progress >= PROGRESS_INTERVAL_S
        if progress_due or self.metrics_port is not None:  # lag is for these two only
            await self._optional_step("lag", self._measure_lag)
        if progress_due:
            self._last_progress = now
            self._log_progress()
        if now - self._last_trim >= TRIM_INTERVAL_S:
            self._last_trim = now
            await self._optional_step("trim", self._trim)

    async def _optional_step(self, name: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run one optional step; a failure other than a Redis error (those are the
        caller's) is logged, once then with a count, and the next steps run."""
        try:
            await step()
        except redis.RedisError:
            raise
        except Exception as err:
            self.problems.error(
                ("step", name, type(err).__name__),
                "maintenance step %r failed (%s: %s); the other steps go on",
                name,
                type(err).__name__,
                err,
                exc_info=err,
            )

    async def _trim(self) -> None:
        """Trim every partition we own, in three round trips (see ``trim_outboxes``); a
        partition whose trimming fails is blamed alone."""
        streams = list(self.states)
        for stream, removed in zip(streams, await trim_outboxes(self.client, streams), strict=True):
            async with self.on_partition(stream):
                if isinstance(removed, Exception):
                    raise removed
                self.stats.trimmed += removed

    async def _measure_lag(self) -> None:
        """Each partition's lag (XINFO GROUPS), all in one pipeline (one round trip, on a
        cluster one per node); a partition whose read fails is blamed alone."""
        owned = list(self.states.items())
        replies = await pipelined(
            self.client, len(owned), lambda target, i: target.xinfo_groups(owned[i][0])
        )
        lag: dict[str, int] = {}
        for (stream, state), groups in zip(owned, replies, strict=True):
            async with self.on_partition(stream):
                if isinstance(groups, Exception):
                    raise groups
                for group in groups:
                    if as_text(group["name"]) == self.settings.group:
                        lag[state.keys.member] = int(group.get("lag") or 0)
        self.lag = lag

    async def _claim(self, streams: list[str]) -> None:
        """Take over the entries other consumers left pending longer than ``claim_idle_ms``
        on ``streams`` (XAUTOCLAIM, one pipeline a page for all of them); they are then
        read, in order, by our pending read.  A partition whose claim fails is blamed
        alone.  A claim whose
        reply was lost (a cluster node's connection) is asked again alone: what it took
        is ours and idle, and is claimed again, and read, by a later round."""
        start, claimed = dict.fromkeys(streams, "0-0"), dict.fromkeys(streams, 0)
        going = list(streams)
        while going:
            replies = await pipelined(
                self.client,
                len(going),
                functools.partial(self._claim_page, going, start),
            )
            more: list[str] = []
            for stream, reply in zip(going, replies, strict=True):
                async with self.on_partition(stream):
                    if isinstance(reply, Exception):
                        raise reply
                    start[stream] = as_text(reply[0])
                    claimed[stream] += len(reply[1])
                    if start[stream] != "0-0":
                        more.append(stream)
            going = more
        for stream, count in claimed.items():
            state = self.states.get(stream)
            if state is not None and count:
                state.retry_at = state.retry_at or time.monotonic()
            if count:
                self.stats.claimed += count
                log.info("claimed %d entries of %s left pending by another worker", count, stream)

    def _claim_page(self, streams: list[str], start: dict[str, str], target: Any, i: int) -> Any:
        """The XAUTOCLAIM of the next page of ``streams[i]`` on ``target``."""
        return target.xautoclaim(
            streams[i],
            self.settings.group,
            self.settings.consumer,
            min_idle_time=self.settings.claim_idle_ms,
            start_id=start[streams[i]],
            count=self.settings.batch_size,
        )

    def _log_progress(self) -> None:
        """One line a person can read, when something happened since the last one."""
        s = self.stats
        counts = (s.entries_read, s.triggers_sent, s.depth_stops, s.retries, s.dead_letters)
        if counts == self._last_counts:
            return
        previous = self._last_counts
        self._last_counts = counts
        lag = sum(self.lag.values())
        broken = f", broken partitions {len(self.broken)}" if self.broken else ""
        log.info(
            "progress: +%d entries, +%d triggers sent (total %d), %d partition(s), lag %d, "
            "depth stops %d, retries %d, dead letters %d%s",
            counts[0] - previous[0],
            counts[1] - previous[1],
            counts[1],
            len(self.states),
            lag,
            s.depth_stops,
            s.retries,
            s.dead_letters,
            broken,
        )
