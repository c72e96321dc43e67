"""The worker: outbox streams in, Zenoh PUTs out, acknowledged only after the PUTs.

Workers of one consumer group share the partitions through leases
(:mod:`~oprc_redis_events.worker.leases`): each partition is consumed by one worker at a time, in
write order.  Per batch the worker decodes the entries of a partition, builds one
:class:`~.wire.Dispatch` per (event, target), hands them to the publisher in order, then
XACKs what went out.

When an entry fails (the publisher raised, or the batch outlived ``trigger_timeout_ms``)
the partition pauses: the entry and those after it stay pending and are read again after
a backoff, until they go out or the entry has been delivered ``max_deliveries`` times,
when it is dead-lettered and the partition moves on.  An entry that can never be
dispatched (anything that fails in turning it into PUTs) is dead-lettered at once.  In
hold mode an entry whose target has no Zenoh subscriber waits (pausing its partition)
until one appears or ``hold_max_age_ms`` passes since its write.

Whatever the worker reads from Redis is untrusted, and one bad key never stops the rest:
a partition whose keys are unusable is skipped, logged once, counted and tried again
later (:mod:`~oprc_redis_events.worker.broken`).  The dispatch loop, the maintenance loop and
keyspace capture run under a :class:`~.supervisor.Supervisor`: a task that fails is
logged at once and restarted; one that cannot recover stops the worker with
:class:`~.supervisor.WorkerFailedError`.  The parts: reading (:mod:`.reading`), handling
entries (:mod:`.handling`), discovery (:mod:`.discovery`) and upkeep (:mod:`.maintenance`).

``run()`` is the process (SIGTERM/SIGINT stop it gracefully); ``run_async()`` is the core,
which tests embed; ``burst=True`` returns once nothing is left to read or retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

import redis
import redis.asyncio as aredis

from ..client.aio.store import AsyncObjectStore
from ..config import Settings, redact_url
from ..connect.permissions import check_worker_async
from ..connect.redis_client import async_redis_client
from ..errors import OprcEventsError
from ..protocol.encode import DELIVERY_MODES, Delivery
from ..protocol.keys import PartitionKeys
from .acks import AckQueue
from .batches import Batches
from .broken import TOPOLOGY_ERRORS, BrokenPartitions, redis_unusable
from .discovery import RESCAN_INTERVAL_S, PartitionState
from .dispatch import Dispatcher
from .leases import Leases
from .logonce import ThrottledLog
from .maintenance import PartitionMaintenance
from .metrics import MetricsServer, WorkerMetrics
from .publisher import Publisher, ZenohPublisher
from .reading import OutboxReading
from .stats import WorkerStats
from .supervisor import Supervisor, WorkerFailedError
from .waking import freeze_loaded_heap

__all__ = ["Worker", "WorkerFailedError", "WorkerStats"]

log = logging.getLogger("oprc_redis_events.worker.loop")


class Worker(OutboxReading, PartitionMaintenance):
    """Dispatches outbox entries to Zenoh (see the module docstring)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        client: aredis.Redis | None = None,
        publisher: Publisher | None = None,
        delivery: Delivery = "put",
        block_ms: int | None = None,
        discover_interval: float = 1.0,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
    ) -> None:
        if delivery not in DELIVERY_MODES:
            raise OprcEventsError(f"delivery must be one of {', '.join(DELIVERY_MODES)}")
        self.settings = settings or Settings.from_env()
        self.client = client or async_redis_client(self.settings)
        self.publisher = publisher
        self.delivery = delivery
        self.block_ms = block_ms or (500 if self.cluster else 25)  # see waking.py
        # Leases are renewed and heartbeats sent on this tick: well inside the lease time.
        self.discover_interval = min(discover_interval, self.settings.claim_idle_ms / 4000)
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self._init_state()

    def _init_state(self) -> None:
        """What the worker keeps while it runs: partitions, leases, statistics, metrics."""
        self.stats = WorkerStats()
        self.partitions: dict[str, PartitionKeys] = {}  # every usable outbox stream
        self.states: dict[str, PartitionState] = {}  # the streams we own
        self.leases = Leases(
            self.client, self.settings.group, self.settings.consumer, self.settings.claim_idle_ms
        )
        self._stop = asyncio.Event()
        self.problems = ThrottledLog(log)  # a recurring problem: once, then a count
        self.broken = BrokenPartitions(self.problems)
        self.leases.quiet = self.broken.is_unresolved  # no take/release line per retry
        self.supervisor = Supervisor(self._stop, self.problems)
        self._init_wakeups()
        self._last_scan = -RESCAN_INTERVAL_S
        self._scan_found: set[str] = set()
        self._scan_labels: set[str] = set()
        self.acks = AckQueue()
        self.batches = Batches()
        self.capture: Any = None  # a KeyspaceCapture when settings.capture == "keyspace"
        self.objects_api: Any = None  # an ObjectsApi when settings.serve_objects is set
        self.lag: dict[str, int] = {}  # partition -> entries not yet read by the group
        self.metrics = WorkerMetrics(self)
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
        """Run until SIGTERM or SIGINT, then finish the batch in hand and close.

        Raises :class:`WorkerFailedError` when a background task could not recover."""
        asyncio.run(self._main())

    async def _main(self) -> None:
        # the process is ours: the maintenance tends the heap (see waking)
        self._own_heap = freeze_loaded_heap()
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
        """The worker loop; with ``burst`` it returns once nothing is left to do.

        Raises :class:`WorkerFailedError` when a background task could not recover (the
        worker stopped, as after :meth:`stop`)."""
        async with contextlib.AsyncExitStack() as resources:  # one failing close skips none
            resources.push_async_callback(self.client.aclose)
            if self.settings.check_permissions:  # before anything: a missing right, named
                own = "worker" if self.settings.capture == "off" else "capture"
                await check_worker_async(
                    self.client, (own, "writer") if self.settings.serve_objects else (own,)
                )
            if self.publisher is None and not await self._open_publisher(resources):
                return self.stats  # stopped before Zenoh could be reached
            resources.callback(lambda: log.info("worker stopped: %s", self.summary()))
            resources.callback(self.dispatcher.close)
            resources.push_async_callback(self._settle)
            resources.push_async_callback(self._close_blocking)
            resources.callback(self._stop.set)
            self._log_start()
            await self._serve_objects(resources)
            self._start_metrics(resources)
            if burst:
                await self._burst()
            else:
                self._supervise()
                await self.supervisor.join()
        if self.supervisor.failure is not None:
            raise WorkerFailedError(
                f"{self.supervisor.failure}; see the log above (exit status 1: restart it "
                "once the cause is fixed)"
            )
        return self.stats

    async def _open_publisher(self, resources: contextlib.AsyncExitStack) -> bool:
        """Open our own Zenoh session (retrying until it is up or we are stopped)."""
        from ..connect.zenoh_session import open_session_retrying

        session = await open_session_retrying(self.settings, self._stop, log)
        if session is None:
            return False
        self.publisher = ZenohPublisher(session, owned=True)
        resources.callback(self._close_publisher)
        return True

    async def _serve_objects(self, resources: contextlib.AsyncExitStack) -> None:
        """The ODGM data API of ``settings.serve_objects``, on the publisher's session."""
        if not self.settings.serve_objects:
            return
        from .inflight import InFlight, TrackingPublisher
        from .objects_api import ObjectsApi

        session = getattr(self.publisher, "session", None)
        if session is None:
            raise OprcEventsError("serve_objects needs a Zenoh publisher (a ZenohPublisher)")
        inflight = InFlight()  # writes by the functions we invoke get their depth + 1
        self.publisher = TrackingPublisher(self.publisher, inflight)
        store = AsyncObjectStore(self.client, self.settings)
        api = ObjectsApi(store, session, self.settings.serve_objects, inflight=inflight)
        self.objects_api = await resources.enter_async_context(api)

    def _close_publisher(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None

    async def _settle(self) -> None:
        """Acknowledge what went out and give our partitions back, if Redis lets us."""
        with contextlib.suppress(redis.RedisError):
            await self._flush_acks(wait=True)
        with contextlib.suppress(redis.RedisError):
            await self.leases.release_all()

    def _log_start(self) -> None:
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

    def _start_metrics(self, resources: contextlib.AsyncExitStack) -> None:
        """The metrics server, in a thread; if it dies, the worker fails (not silently)."""
        if self.metrics_port is None:
            return
        loop = asyncio.get_running_loop()
        self.metrics_server = MetricsServer(
            self.metrics,
            self.metrics_host,
            self.metrics_port,
            self.live,
            self.ready,
            on_failure=lambda err: loop.call_soon_threadsafe(
                self.supervisor.fail, "metrics server", err
            ),
        ).start()
        resources.callback(self.metrics_server.close)
        log.info(
            "metrics on http://%s:%d/metrics (health: /healthz, /readyz)",
            self.metrics_host,
            self.metrics_server.port,
        )

    def _new_capture(self) -> Any:
        from .capture import KeyspaceCapture

        self.capture = KeyspaceCapture(
            self.client,
            events_enabled=self.settings.events_enabled,
        )
        self.capture.announce = self.announce  # its first entry in an outbox: take it now
        return self.capture

    def _supervise(self) -> None:
        """Start the background tasks, each under the supervisor: none ends silently."""
        self.supervisor.start("dispatch loop", lambda: self._loop(False))
        # Not cancelled at the end: redis-py may swallow a cancellation in the middle of a
        # command; the tasks check the stop flag instead.
        self.supervisor.start("maintenance", self._maintain_forever)
        self.supervisor.start("new-outbox listener", lambda: self.announcements.run(self._stop))
        if self.settings.capture == "keyspace":
            capture = self._new_capture()
            self.supervisor.start("keyspace capture", lambda: capture.run(self._stop))

    async def _burst(self) -> None:
        if self.settings.capture == "keyspace":
            capture = self._new_capture()
            await capture.ensure_notifications()
            await capture.reconcile()
        await self._loop(True)

    def live(self) -> bool:
        """Liveness: the loop turned in the last 30 s (a blocked loop is not alive)."""
        return time.monotonic() - self._last_turn < 30

    def ready(self) -> bool:
        """Readiness: Redis answered in the last 10 s, a publisher is open, no background
        task is down, and keyspace capture (when on) says it is capturing."""
        return (
            self.publisher is not None
            and self.supervisor.healthy
            and bool(getattr(self.capture, "healthy", True))
            and time.monotonic() - self._last_redis_ok < 10
        )

    def summary(self) -> str:
        s = self.stats
        return (
            f"entries={s.entries_read} events={s.events_read} triggers_sent={s.triggers_sent} "
            f"depth_stops={s.depth_stops} retries={s.retries} held={s.held} "
            f"dead_letters={s.dead_letters} claimed={s.claimed}"
        )

    async def _loop(self, burst: bool) -> None:
        backoff = 0.1
        for state in self.states.values():  # (re)started: what we read before is pending
            state.retry_at = state.retry_at or time.monotonic()
        while not self._stop.is_set():
            try:
                if burst:
                    await self.maintain()
                handled = await self._step(block=not burst)
                self._last_turn = time.monotonic()
                if self.states:  # the turn read from Redis (else maintenance tells)
                    self._last_redis_ok = self._last_turn
                if backoff > 0.1:
                    self.problems.resolved(("loop", "redis"))
                    log.info("Redis is reachable again")
                backoff = 0.1
            except redis.ResponseError as err:
                if not any(code in str(err) for code in ("NOGROUP", "UNBLOCKED")):
                    if not redis_unusable(err):
                        raise
                    backoff = await self._unavailable(err, backoff)
                    continue
                # The stream or its group is gone (Redis lost its data, or someone deleted
                # them): forget what we knew and discover again.
                self.problems.warning(
                    ("loop", "nogroup"),
                    "outbox or consumer group gone (%s); discovering again",
                    err,
                )
                self._forget_partitions()
                await self._sleep(backoff)
                continue
            except (redis.ConnectionError, redis.TimeoutError, *TOPOLOGY_ERRORS) as err:
                backoff = await self._unavailable(err, backoff)
                continue
            idle = not handled and not any(st.retry_at for st in self.states.values())
            if burst and idle and await self._burst_over():
                return
