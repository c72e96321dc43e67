"""``oprc-redis-events demo``: the whole flow on one machine, started and stopped here.

A private ``redis-server`` (unless ``--redis-url`` is given), an embedded Zenoh router
on loopback, a worker, and a subscriber that prints every trigger decoded as a target
function would see it; then a few writes on an ``orders`` object whose triggers call a
notification service (stateless), an audit log object (stateful) and an analytics
function.  Everything started here is stopped on exit or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .config import Settings
from .pb.oprc_data_pb2 import ObjectEvent, TriggerTarget
from .publisher import ZenohPublisher
from .received import ReceivedTrigger, decode_trigger
from .servers import RedisServer, free_port
from .store import ObjectStore
from .worker import Worker
from .zenoh_session import open_session

__all__ = ["run_demo"]

Echo = Callable[[str], None]


def demo_triggers() -> ObjectEvent:
    """Triggers of the demo's orders: notification on status updates, audit on every
    change of the status, analytics on a new or removed amount."""
    ev = ObjectEvent()
    notify = TriggerTarget(cls_id="notification_service", partition_id=0, fn_id="send_notification")
    audit = TriggerTarget(cls_id="audit_log", partition_id=0, object_id=1, fn_id="record")
    analytics = TriggerTarget(cls_id="analytics", partition_id=0, fn_id="track")
    status = ev.data_trigger[42]
    status.on_update.extend([notify, audit])
    status.on_create.append(audit)
    amount = ev.data_trigger_str["amount"]
    amount.on_create.append(analytics)
    amount.on_delete.append(analytics)
    return ev


class _Inbox:
    def __init__(self, echo: Echo | None) -> None:
        self.received: list[ReceivedTrigger] = []
        self._echo = echo
        self._lock = threading.Lock()

    def __call__(self, sample: Any) -> None:
        trigger = decode_trigger(str(sample.key_expr), sample.payload.to_bytes())
        with self._lock:
            self.received.append(trigger)
        if self._echo is not None:
            self._echo(f"  <- {trigger.describe()}")

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                return True
            time.sleep(0.02)
        return len(self.received) >= count


@contextlib.contextmanager
def _redis(url: str | None, echo: Echo) -> Iterator[str]:
    if url:
        echo(f"Redis: using {url}")
        yield url
        return
    with RedisServer() as server:
        echo(f"Redis: started a private redis-server on 127.0.0.1:{server.port}")
        yield server.url


def _scripted_writes(store: ObjectStore, echo: Echo) -> int:
    """The demo's writes; returns how many triggers they should produce."""
    steps: list[tuple[str, Callable[[], object], int]] = [
        (
            "create orders/0/1001 with status=pending",
            lambda: store.create("orders", 0, 1001, {42: b"pending"}, event=demo_triggers()),
            1,
        ),
        ("update status -> paid", lambda: store.update("orders", 0, 1001, {42: b"paid"}), 2),
        (
            "update status -> paid again (unchanged: no event)",
            lambda: store.update("orders", 0, 1001, {42: b"paid"}),
            0,
        ),
        (
            "set amount = 99.50 (new field: CREATE)",
            lambda: store.update("orders", 0, 1001, {"amount": b"99.50"}),
            1,
        ),
        ("update status -> shipped", lambda: store.update("orders", 0, 1001, {42: b"shipped"}), 2),
        ("delete the object (DELETE per field)", lambda: store.delete("orders", 0, 1001), 1),
    ]
    expected = 0
    for text, action, count in steps:
        echo(f"write: {text}  [{count} trigger(s) expected]")
        action()
        expected += count
        time.sleep(0.15)
    return expected


def _bulk_writes(store: ObjectStore, events: int) -> int:
    ev = ObjectEvent()
    ev.data_trigger[1].on_update.append(
        TriggerTarget(cls_id="notification_service", partition_id=0, fn_id="send_notification")
    )
    store.delete("orders", 0, 2001)
    store.create("orders", 0, 2001, {1: b"0"}, event=ev)
    for i in range(1, events + 1):
        store.update("orders", 0, 2001, {1: str(i).encode()})
    return events


def run_demo(
    *,
    redis_url: str | None = None,
    events: int | None = None,
    payload_format: str = "json",
    timeout: float = 30.0,
    echo: Echo = print,
) -> bool:
    """Run the demo; ``events`` makes it headless (N updates, a summary, no per-trigger
    lines).  Returns whether every expected trigger arrived."""
    port = free_port()
    endpoint = f"tcp/127.0.0.1:{port}"
    base = Settings.from_env(payload_format=payload_format)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(_redis(redis_url, echo))
        settings = base.replace(redis_url=url)
        router = open_session(settings, mode="router", listen=(endpoint,), connect=())
        stack.callback(router.close)
        echo(f"Zenoh: embedded router listening on {endpoint}")
        inbox = _Inbox(None if events else echo)
        subscriber = router.declare_subscriber("oprc/**", inbox)
        stack.callback(subscriber.undeclare)
        worker_session = open_session(settings, connect=(endpoint,), listen=())
        stack.callback(worker_session.close)
        worker = Worker(
            settings, publisher=ZenohPublisher(worker_session), block_ms=100, discover_interval=0.2
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
        stack.callback(thread.join, 10)
        stack.callback(loop.call_soon_threadsafe, worker.stop)
        echo("worker: started (consumer group oprc-events)")
        store = ObjectStore.from_url(url, payload_format=payload_format)
        stack.callback(store.close)
        store.client.delete("oprc:{orders:0}:obj:1001", "oprc:{orders:0}:meta:1001")
        started = time.monotonic()
        expected = _bulk_writes(store, events) if events else _scripted_writes(store, echo)
        ok = inbox.wait_for(expected, timeout)
        elapsed = time.monotonic() - started
        got = len(inbox.received)
        echo(
            f"summary: {got}/{expected} triggers arrived in {elapsed:.2f}s "
            f"({'all arrived' if ok and got == expected else 'MISSING'})"
        )
        return ok and got == expected
