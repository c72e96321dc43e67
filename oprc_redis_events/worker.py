"""The worker: outbox streams in, Zenoh PUTs out, acknowledged only after the PUTs.

Workers of one consumer group share the partitions through leases
(:mod:`~oprc_redis_events.leases`): each partition is consumed by one worker at a time, in
write order.  Per batch the worker decodes the entries of a partition, builds one
:class:`~.wire.Dispatch` per (event, target), hands them to the publisher in order, then
XACKs what went out.

When an entry fails (the publisher raised, or the batch outlived ``trigger_timeout_ms``)
the partition pauses: the entry and those after it stay pending and are read again after
a backoff, until they go out or the entry has been delivered ``max_deliveries`` times,
when it is dead-lettered and the partition moves on.  An entry that can never be
dispatched (undecodable, an invalid target) is dead-lettered at once.  In hold mode an
entry whose target has no Zenoh subscriber waits (pausing its partition) until one
appears or ``hold_max_age_ms`` passes since its write.

``run()`` is the process (SIGTERM/SIGINT stop it gracefully); ``run_async()`` is the core,
which tests embed; ``burst=True`` returns once nothing is left to read or retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis

from .asyncio_store import AsyncObjectStore
from .config import Settings, redact_url
from .deadletters import dead_letter_fields
from .dispatch import Dispatcher, Outcome, Plan
from .errors import InvalidIdError, OprcEventsError
from .keys import PartitionKeys, as_text
from .leases import Leases
from .maintenance import RESCAN_INTERVAL_S, PartitionMaintenance, PartitionState
from .metrics import MetricsServer, WorkerMetrics
from .outbox import OutboxEntry, PoisonEntryError, decode_entry
from .publisher import Publisher, ZenohPublisher
from .stats import WorkerStats
from .wire import DELIVERY_MODES, Delivery, Dispatch, build_dispatch

__all__ = ["Worker", "WorkerStats"]

log = logging.getLogger("oprc_redis_events.worker")

HOLD_POLL_S = 0.1


DeadLetterRecord = tuple[str, dict[bytes, bytes], str, str, int]


@dataclass
class DeferredAck:
    """Entries whose PUTs went to Zenoh, acknowledged once ``due`` (see ack_delay_ms)."""

    due: float
    partition: PartitionKeys
    acked: list[str]
    dead: list[DeadLetterRecord]


def _stream_items(reply: Any) -> Iterable[tuple[Any, Any]]:
    """XREADGROUP's reply as (stream, entries) pairs.

    RESP2 gives ``[[stream, entries], ...]``; RESP3 gives ``{stream: [entries]}``.
    """
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(stream, value[0] if value else []) for stream, value in reply.items()]
    return [(item[0], item[1]) for item in reply]


class Worker(PartitionMaintenance):
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
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
    ) -> None:
        if delivery not in DELIVERY_MODES:
            raise OprcEventsError(f"delivery must be one of {', '.join(DELIVERY_MODES)}")
        self.settings = settings or Settings.from_env()
        self.client = client or aredis.Redis.from_url(self.settings.redis_url)
        self.publisher = publisher
        self.delivery = delivery
        self.block_ms = block_ms
        # Leases are renewed and heartbeats sent on this tick: well inside the lease time.
        self.discover_interval = min(discover_interval, self.settings.claim_idle_ms / 4000)
        self.stats = WorkerStats()
        self.partitions: dict[str, PartitionKeys] = {}  # every known outbox stream
        self.states: dict[str, PartitionState] = {}  # the streams we own
        self.leases = Leases(
            self.client, self.settings.group, self.settings.consumer, self.settings.claim_idle_ms
        )
        self._stop = asyncio.Event()
        self._last_scan = -RESCAN_INTERVAL_S
        self._deferred: list[DeferredAck] = []
        self.capture: Any = None  # a KeyspaceCapture when settings.capture == "keyspace"
        self.lag: dict[str, int] = {}  # partition -> entries not yet read by the group
        self.metrics = WorkerMetrics(self)
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.metrics_server: MetricsServer | None = None
        self._last_turn = self._last_redis_ok = 0.0
        self._last_progress = time.monotonic()
        self._last_counts: tuple[int, ...] = (0, 0, 0, 0, 0)
        self.dispatcher = Dispatcher(
            self.settings, self.stats, self.metrics, AsyncObjectStore(self.client, self.settings)
        )
        self._last_claim = self._last_trim = 0.0

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
        if not self._stop.is_set():
            log.info("stopping: finishing the batch in hand")
        self._stop.set()

    async def run_async(self, *, burst: bool = False) -> WorkerStats:
        """The worker loop; with ``burst`` it returns once nothing is left to do."""
        owned = self.publisher is None
        if self.publisher is None:
            from .zenoh_session import open_session_retrying

            session = await open_session_retrying(self.settings, self._stop, log)
            if session is None:  # stopped before Zenoh could be reached
                await self.client.aclose()
                return self.stats
            self.publisher = ZenohPublisher(session, owned=True)
        s = self.settings
        log.info(
            "worker started: redis=%s group=%s consumer=%s delivery=%s format=%s hold=%s",
            redact_url(s.redis_url),
            s.group,
            s.consumer,
            self.delivery,
            s.payload_format,
            s.hold,
        )
        if self.metrics_port is not None:
            self.metrics_server = MetricsServer(
                self.metrics, self.metrics_host, self.metrics_port, self.live, self.ready
            ).start()
            log.info(
                "metrics on http://%s:%d/metrics (health: /healthz, /readyz)",
                self.metrics_host,
                self.metrics_server.port,
            )
        maintenance = None if burst else asyncio.create_task(self._maintain_forever())
        capture = None
        if self.settings.capture == "keyspace":
            from .capture import KeyspaceCapture

            self.capture = KeyspaceCapture(
                self.client,
                events_enabled=self.settings.events_enabled,
                db=int(self.client.connection_pool.connection_kwargs.get("db", 0)),
            )
            if burst:
                await self.capture.ensure_notifications()
                await self.capture.reconcile()
            else:
                capture = asyncio.create_task(self.capture.run(self._stop))
        try:
            await self._loop(burst)
        finally:
            self._stop.set()
            if capture is not None:
                await capture
            if maintenance is not None:
                # Not cancel(): redis-py may swallow a cancellation in the middle of a
                # command; the loop checks the stop flag instead.
                await maintenance
            with contextlib.suppress(redis.RedisError):
                await self._flush_acks(wait=True)
            with contextlib.suppress(redis.RedisError):
                await self.leases.release_all()
            self.dispatcher.close()
            if owned and self.publisher is not None:
                self.publisher.close()
                self.publisher = None
            await self.client.aclose()
            if self.metrics_server is not None:
                self.metrics_server.close()
            log.info("worker stopped: %s", self.summary())
        return self.stats

    def live(self) -> bool:
        """Liveness: the loop turned in the last 30 s (a blocked loop is not alive)."""
        return time.monotonic() - self._last_turn < 30

    def ready(self) -> bool:
        """Readiness: Redis answered in the last 10 s and a publisher is open."""
        return self.publisher is not None and time.monotonic() - self._last_redis_ok < 10

    def summary(self) -> str:
        s = self.stats
        return (
            f"entries={s.entries_read} events={s.events_read} triggers_sent={s.triggers_sent} "
            f"depth_stops={s.depth_stops} retries={s.retries} held={s.held} "
            f"dead_letters={s.dead_letters} claimed={s.claimed}"
        )

    async def _loop(self, burst: bool) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                if burst:
                    await self.maintain()
                handled = await self._step(block=not burst)
                self._last_turn = self._last_redis_ok = time.monotonic()
                if backoff > 0.1:
                    log.info("Redis is reachable again")
                backoff = 0.1
            except redis.ResponseError as err:
                if not any(code in str(err) for code in ("NOGROUP", "UNBLOCKED")):
                    raise
                # The stream or its group is gone (Redis lost its data, or someone deleted
                # them): forget what we knew and discover again.
                log.warning("outbox or consumer group gone (%s); discovering again", err)
                self._forget_partitions()
                await self._sleep(backoff)
                continue
            except (redis.ConnectionError, redis.TimeoutError) as err:
                self._last_turn = time.monotonic()
                log.warning("Redis unavailable (%s); retrying in %.1fs", err, backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            idle = not handled and not any(st.retry_at for st in self.states.values())
            if burst and idle:
                await self._flush_acks(wait=True)
                return

    # -- reading --------------------------------------------------------------------------

    async def _step(self, *, block: bool) -> int:
        await self._flush_acks()
        now = time.monotonic()
        handled = 0
        for stream, state in list(self.states.items()):
            if state.retry_at is not None and state.retry_at <= now:
                # Our pending entries include deferred acks: settle them first, or they
                # would be read (and sent) again.
                await self._flush_acks(stream, wait=True)
                pending = await self._xreadgroup({stream: "0"}, block_ms=None)
                state.retry_at = None
                if pending:
                    handled += await self._handle(state.keys, [(i, f) for _, i, f in pending])
        reading = {s: ">" for s, st in self.states.items() if st.retry_at is None}
        block_ms = self._block_ms(now) if block else None
        if not reading:
            await self._sleep((block_ms or 0) / 1000)
            return handled
        by_stream: dict[str, list[tuple[str, dict[bytes, bytes]]]] = defaultdict(list)
        for stream, entry_id, fields in await self._xreadgroup(reading, block_ms=block_ms):
            by_stream[stream].append((entry_id, fields))
        for stream, batch in by_stream.items():
            owner = self.states.get(stream)
            keys = owner.keys if owner is not None else PartitionKeys.from_key(stream)
            handled += await self._handle(keys, batch)
        return handled

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

    # -- handling -------------------------------------------------------------------------

    def plan(self, entry: OutboxEntry) -> list[Dispatch]:
        """The dispatches of one decoded entry ([] when its depth is at the limit)."""
        if entry.group not in (None, self.settings.group):
            return []  # a dead letter replayed for another consumer group
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

    async def _handle(
        self, partition: PartitionKeys, entries: list[tuple[str, dict[bytes, bytes]]]
    ) -> int:
        """Dispatch one partition's entries in order; acknowledge and dead-letter."""
        plans: list[Plan] = []
        dead: list[DeadLetterRecord] = []
        for entry_id, fields in entries:
            self.stats.entries_read += 1
            try:
                entry = decode_entry(partition, entry_id, fields)
                plans.append(Plan(entry_id, fields, entry, self.plan(entry)))
                self.stats.events_read += len(entry.events)
            except (PoisonEntryError, InvalidIdError) as err:
                dead.append((entry_id, fields, f"cannot be dispatched: {err}", "", 1))
        outcome = await self._publish(plans)
        acked = [p.entry_id for p in plans[: outcome.done]] + [d[0] for d in dead]
        if outcome.done < len(plans):
            failed = plans[outcome.done]
            verdict = await self._after_failure(partition, failed, outcome)
            if verdict is not None:
                dead.append(verdict)
                acked.append(failed.entry_id)
        if outcome.done and any(p.dispatches for p in plans[: outcome.done]):
            due = time.monotonic() + self.settings.ack_delay_ms / 1000
            self._deferred.append(DeferredAck(due, partition, acked, dead))
        else:
            await self._finish(partition, acked, dead)
        return len(entries)

    async def _flush_acks(self, stream: str | None = None, *, wait: bool = False) -> None:
        """Acknowledge deferred batches that are due (all of them, or ``stream``'s, when
        ``wait``: after sleeping until they are due)."""
        keep: list[DeferredAck] = []
        ready: list[DeferredAck] = []
        now = time.monotonic()
        for item in self._deferred:
            mine = stream is None or item.partition.outbox == stream
            (ready if mine and (wait or item.due <= now) else keep).append(item)
        if ready and wait:
            await asyncio.sleep(max(0.0, max(i.due for i in ready) - now))
        self._deferred = keep
        for i, item in enumerate(ready):
            try:
                await self._finish(item.partition, item.acked, item.dead)
            except redis.RedisError:
                self._deferred.extend(ready[i:])  # try again on the next step
                raise

    async def _after_failure(
        self, partition: PartitionKeys, failed: Plan, outcome: Outcome
    ) -> DeadLetterRecord | None:
        """Schedule the retry of a failed or held entry, or return its dead letter."""
        state = self.states.get(partition.outbox)
        now = time.monotonic()
        if outcome.held_key is not None:
            age_ms = int(time.time() * 1000) - failed.entry.timestamp
            if age_ms > self.settings.hold_max_age_ms:
                reason = (
                    f"no subscriber for {outcome.held_key} within "
                    f"{self.settings.hold_max_age_ms} ms of the write"
                )
                log.error(
                    "dead-lettering entry %s of %s: %s", failed.entry_id, partition.member, reason
                )
                if state is not None:
                    state.retry_at = now
                return (failed.entry_id, failed.fields, reason, "", 0)
            self.stats.held += 1
            if state is not None:
                state.retry_at = now + HOLD_POLL_S
            return None
        attempts = await self._deliveries(partition.outbox, failed.entry_id)
        if attempts >= self.settings.max_deliveries:
            reason = f"delivery failed {attempts} times"
            log.error(
                "dead-lettering entry %s of %s: %s (%s)",
                failed.entry_id,
                partition.member,
                reason,
                outcome.error,
            )
            if state is not None:
                state.retry_at = now
            return (failed.entry_id, failed.fields, reason, outcome.error or "", attempts)
        delay = min(self.settings.retry_base_ms * 2 ** (attempts - 1), self.settings.retry_max_ms)
        self.stats.retries += 1
        log.warning(
            "entry %s of %s failed (attempt %d of %d: %s); retrying in %d ms",
            failed.entry_id,
            partition.member,
            attempts,
            self.settings.max_deliveries,
            outcome.error,
            delay,
        )
        if state is not None:
            state.retry_at = now + delay / 1000
        return None

    async def _deliveries(self, stream: str, entry_id: str) -> int:
        pending = await self.client.xpending_range(
            stream, self.settings.group, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 1

    async def _publish(self, plans: list[Plan]) -> Outcome:
        assert self.publisher is not None
        return await self.dispatcher.publish(self.publisher, plans)

    async def _finish(
        self,
        partition: PartitionKeys,
        acked: list[str],
        dead: list[DeadLetterRecord],
    ) -> None:
        if not acked and not dead:
            return
        now = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=True)  # one slot: outbox and dlq share the tag
        for entry_id, fields, reason, error, attempts in dead:
            if "cannot be dispatched" in reason:
                log.error("dead-lettering entry %s of %s: %s", entry_id, partition.member, reason)
            pipe.xadd(
                partition.dead_letters,
                dead_letter_fields(  # type: ignore[arg-type]
                    fields,
                    source_id=entry_id,
                    reason=reason,
                    error=error,
                    attempts=attempts,
                    failed_at=now,
                    group=self.settings.group,
                ),
            )
        if acked:
            pipe.xack(partition.outbox, self.settings.group, *acked)
        await pipe.execute()
        self.stats.dead_letters += len(dead)
