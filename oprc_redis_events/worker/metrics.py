"""Prometheus metrics and health endpoints of a worker.

``GET /metrics`` (Prometheus text format), ``GET /healthz`` (liveness: the worker loop
turned recently) and ``GET /readyz`` (readiness: its last Redis round trip succeeded and
it serves partitions or is waiting for some) on ``--metrics-port``.  Counters are read
from the worker's own :class:`~oprc_redis_events.worker.loop.WorkerStats` at scrape time, so
the numbers the worker logs and the numbers Prometheus sees are the same numbers.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..errors import ConfigError

#: a bucket bound as the library's Histogram spells it (``1.0``, ``+Inf``)
_spelled: Callable[[float], str] = floatToGoString

__all__ = ["LATENCY_BUCKETS", "MetricsServer", "WorkerCollector", "WorkerMetrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
PREFIX = "oprc_events"


class WorkerCollector(Collector):
    """Reads the worker's counters at scrape time."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield from self._partitions()
        yield from self._capture()
        yield from self._objects_api()
        yield CounterMetricFamily(
            f"{PREFIX}_batches_sent",
            "Batches sent to batched targets (oprc.batch_max / oprc.batch_ms)",
            value=self.worker.stats.batches_sent,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_updates_coalesced",
            "Updates folded into a later update's trigger (oprc.coalesce_ms)",
            value=self.worker.stats.updates_coalesced,
        )

    def _counters(self) -> Iterator[Metric]:
        stats = self.worker.stats
        simple = [
            ("entries_read", "Outbox entries read", stats.entries_read),
            ("events_read", "Events read from outbox entries", stats.events_read),
            (
                "depth_stops",
                "Triggers not dispatched: the event was at the depth limit",
                stats.depth_stops,
            ),
            ("retries", "Failed dispatch attempts scheduled for a retry", stats.retries),
            ("dead_letters", "Entries moved to a dead-letter stream", stats.dead_letters),
            ("held", "Times an entry was held for want of a subscriber", stats.held),
            ("claimed", "Entries claimed from workers that stopped", stats.claimed),
            ("trimmed", "Acknowledged outbox entries trimmed", stats.trimmed),
            (
                "forged_targets",
                "Targets read back from Redis that fail validation: dead-lettered, not sent",
                stats.forged_targets,
            ),
            (
                "condition_skips",
                "Triggers not sent because their condition (oprc.when) was false",
                stats.condition_skips,
            ),
            (
                "condition_errors",
                "Conditions (oprc.when) that failed at run time and were taken as false",
                stats.condition_errors,
            ),
        ]
        for name, doc, value in simple:
            yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)
        sent = CounterMetricFamily(
            f"{PREFIX}_triggers_dispatched", "Triggers handed to Zenoh", labels=["cls", "fn"]
        )
        for (cls_id, fn_id), value in sorted(stats.sent_by_target.items()):
            sent.add_metric([cls_id, fn_id], value)
        yield sent

    def _partitions(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            f"{PREFIX}_outbox_lag",
            "Entries not yet read by the group, per partition",
            labels=["partition"],
        )
        for member, value in sorted(self.worker.lag.items()):
            lag.add_metric([member], value)
        yield lag
        yield GaugeMetricFamily(
            f"{PREFIX}_partitions_owned",
            "Partitions this worker consumes",
            value=len(self.worker.states),
        )
        broken = self.worker.broken
        yield GaugeMetricFamily(
            f"{PREFIX}_broken_partitions",
            "Partitions (or registry members, stream names) skipped because their state in "
            "Redis is unusable; each is tried again later",
            value=len(broken),
        )
        yield CounterMetricFamily(
            f"{PREFIX}_partition_errors",
            "Errors that made the worker skip a partition (or a malformed name)",
            value=broken.errors,
        )

    def _capture(self) -> Iterator[Metric]:
        capture = self.worker.capture
        if capture is None:
            return
        c = capture.stats
        yield CounterMetricFamily(
            f"{PREFIX}_capture_notifications",
            "Keyspace notifications received",
            value=c.notifications,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_capture_changes", "Field changes found by keyspace capture", value=c.changes
        )
        yield CounterMetricFamily(
            f"{PREFIX}_capture_reconciles", "Full reconciles run", value=c.reconciles
        )

    def _objects_api(self) -> Iterator[Metric]:
        api = getattr(self.worker, "objects_api", None)
        if api is None:
            return
        requests = CounterMetricFamily(
            f"{PREFIX}_objects_requests",
            "Data API requests served (get, set, put, delete)",
            labels=["kind"],
        )
        for kind, value in sorted(api.stats.requests.items()):
            requests.add_metric([kind], value)
        yield requests
        yield CounterMetricFamily(
            f"{PREFIX}_objects_errors", "Data API requests refused", value=api.stats.errors
        )
        yield CounterMetricFamily(
            f"{PREFIX}_objects_rate_limited",
            "Data API writes refused: past the writes per object per second",
            value=api.stats.rate_limited,
        )


class LatencyHistogram(Collector):
    """A histogram observed a batch at a time (the exposition of ``prometheus_client``'s
    ``Histogram``: buckets, count, sum and created): one lock per batch of triggers, where
    the library's takes two per observation."""

    def __init__(self, name: str, doc: str, buckets: Sequence[float]) -> None:
        self.name, self.doc = name, doc
        self.bounds = [*buckets, math.inf]
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        self.created = time.time()
        self._lock = threading.Lock()

    def observe_many(self, observed: Iterable[tuple[float, int]]) -> None:
        """Observe each ``(seconds, times)``."""
        counts = [0] * len(self.bounds)
        total = 0.0
        for seconds, times in observed:
            counts[bisect.bisect_left(self.bounds, seconds)] += times
            total += seconds * times
        with self._lock:
            self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
            self.sum += total

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self.counts), self.sum
        cumulative, buckets = 0, []
        for bound, count in zip(self.bounds, counts, strict=True):
            cumulative += count
            buckets.append((_spelled(bound), cumulative))
        yield HistogramMetricFamily(self.name, self.doc, buckets=buckets, sum_value=total)
        yield GaugeMetricFamily(f"{self.name}_created", self.doc, value=self.created)


class WorkerMetrics:
    """The registry of one worker: its counters and its dispatch-latency histogram."""

    def __init__(self, worker: Any) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(WorkerCollector(worker))
        self.latency = LatencyHistogram(
            f"{PREFIX}_dispatch_latency_seconds",
            "From the write (outbox entry timestamp) to the trigger handed to Zenoh",
            LATENCY_BUCKETS,
        )
        self.registry.register(self.latency)

    def observe_dispatch(self, written_ms: int, count: int = 1) -> None:
        self.observe_dispatches([(written_ms, count)])

    def observe_dispatches(self, sent: Iterable[tuple[int, int]]) -> None:
        """Observe ``count`` triggers written at ``written_ms`` for each pair of ``sent``,
        handed to Zenoh now."""
        now = time.time()
        self.latency.observe_many((max(0.0, now - ms / 1000), n) for ms, n in sent)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
        pass


class MetricsServer:
    """Serves /metrics, /healthz and /readyz on ``host:port`` in a thread."""

    def __init__(
        self,
        metrics: WorkerMetrics,
        host: str,
        port: int,
        live: Callable[[], bool],
        ready: Callable[[], bool],
        on_failure: Callable[[BaseException], object] | None = None,
    ) -> None:
        prometheus = make_wsgi_app(metrics.registry)

        def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path in ("/healthz", "/readyz"):
                ok = live() if path == "/healthz" else ready()
                start(
                    "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")]
                )
                return [b"ok\n" if ok else b"not ok\n"]
            return prometheus(environ, start)  # type: ignore[no-any-return]

        try:
            self.server: WSGIServer = make_server(host, port, app, handler_class=_Quiet)
        except OSError as err:  # in use, or an address this host does not have
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {err.strerror or err}; choose another "
                "--metrics-port / --metrics-host (OPRC_EVENTS_METRICS_PORT / _HOST), or stop "
                "what is using it"
            ) from err
        self.port = self.server.server_port
        self.on_failure = on_failure
        self.thread = threading.Thread(target=self._serve, daemon=True, name="oprc-metrics")

    def _serve(self) -> None:
        """The server thread: a failure that ends it is reported, never silent."""
        try:
            self.server.serve_forever()
        except Exception as err:
            if self.on_failure is None:
                raise
            self.on_failure(err)

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
