"""``invoke`` delivery: a failed GET never makes another function of its batch run again."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from oprc_redis_events import ObjectEvent, ObjectStore, Settings, TriggerTarget
from oprc_redis_events.client.invoke import InvokeResult
from oprc_redis_events.functions.host import FunctionHost, InvocationContext
from oprc_redis_events.pb.oprc_invoke_pb2 import (
    InvocationResponse,
    ObjectInvocationRequest,
    ResponseStatus,
)
from oprc_redis_events.protocol.decode import parse_trigger_payload
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher, ZenohPublisher

from .conftest import ZenohHub
from .helpers import RunningWorker, events

ENTRIES = 10
FAILING = 3  # the entry whose "work" function does not answer in time, once


@pytest.fixture
def zstore(redis_url: str, settings: Settings, zenoh_hub: ZenohHub) -> Iterator[ObjectStore]:
    store = ObjectStore(
        redis.Redis.from_url(redis_url), settings, zenoh_session=zenoh_hub.session()
    )
    yield store
    store.close()


def fan_out(store: ObjectStore) -> None:
    """svc 5 records work's outcome; every update of orders 1 invokes audit, then work."""
    svc = ObjectEvent()
    done = TriggerTarget(
        cls_id="sink", partition_id=0, fn_id="done", req_options={"oprc.delivery": "put"}
    )
    svc.func_trigger["work"].on_complete.append(done)
    store.create("svc", 0, 5, {}, event=svc)
    orders = ObjectEvent()
    for fn in ("audit", "work"):
        orders.data_trigger[1].on_update.append(
            TriggerTarget(cls_id="svc", partition_id=0, fn_id=fn, object_id=5)
        )
    store.create("orders", 0, 1, {1: b"start"}, event=orders)
    for i in range(ENTRIES):  # all queued before the worker starts: one batch
        store.update("orders", 0, 1, {1: f"v{i}".encode()})


def test_a_failed_invocation_does_not_run_the_other_functions_again(
    zstore: ObjectStore, client: redis.Redis, settings: Settings, zenoh_hub: ZenohHub
) -> None:
    fan_out(zstore)
    calls: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()
    released = threading.Event()

    def counted(ctx: InvocationContext) -> bytes:
        with lock:
            calls[(ctx.fn_id, ctx.invocation_id)] += 1
            first = calls[(ctx.fn_id, ctx.invocation_id)] == 1
        if ctx.fn_id == "work" and ctx.value == f"v{FAILING}".encode() and first:
            released.wait(30)  # no reply within the timeout: a failed attempt
        return ctx.value or b""

    worker = Worker(
        settings.replace(trigger_timeout_ms=1000, retry_base_ms=50),
        delivery="invoke",
        publisher=ZenohPublisher(zenoh_hub.session()),
        block_ms=20,
        discover_interval=0.05,
    )
    functions = {"audit": counted, "work": counted}
    with FunctionHost(zstore, zenoh_hub.session(), "svc", [0], functions, workers=4):
        time.sleep(0.3)
        running = RunningWorker(worker)
        try:
            deadline = time.monotonic() + 30
            while worker.stats.retries == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            released.set()
            while len(events(client, "svc", 0)) < ENTRIES and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)  # and nothing more
        finally:
            released.set()
            running.stop()
    assert worker.stats.retries == 1
    runs = {key: n for key, n in calls.items()}
    assert len(runs) == 2 * ENTRIES
    again = [key for key, n in runs.items() if n > 1]
    assert len(again) == 1 and again[0][0] == "work"  # only the function that failed
    # What is recorded (the function events) follows the write order of the partition.
    outputs = [payload for _, _, payload in events(client, "svc", 0)]
    assert outputs == [f"v{i}".encode() for i in range(ENTRIES)]
    assert client.xpending("oprc:{orders:0}:outbox", settings.group)["pending"] == 0


def value_of(body: bytes) -> bytes:
    request = ObjectInvocationRequest()
    request.ParseFromString(body)
    return parse_trigger_payload(request.payload).original_payload


def test_answers_of_a_failed_batch_are_reused_on_the_retry(
    store: ObjectStore, client: redis.Redis, settings: Settings
) -> None:
    """The same with an in-memory publisher, in burst mode: a quick check of the rule."""
    fan_out(store)
    publisher = MemoryPublisher()
    failed: list[str] = []

    def responder(key: str, body: bytes) -> InvokeResult:
        if key.endswith("/work") and value_of(body) == f"v{FAILING}".encode() and not failed:
            failed.append(key)
            no_answer = InvocationResponse(status=ResponseStatus.SYSTEM_ERROR, payload=b"no answer")
            return InvokeResult(no_answer, False)
        return InvokeResult(InvocationResponse(status=ResponseStatus.OKAY, payload=b"ok"), True)

    publisher.responder = responder
    worker = Worker(
        settings.replace(retry_base_ms=1, ack_delay_ms=0),
        delivery="invoke",
        publisher=publisher,
        block_ms=20,
    )
    asyncio.run(worker.run_async(burst=True))
    bodies = Counter(body for _, body in publisher.invoked)
    assert failed and len(publisher.invoked) == 2 * ENTRIES + 1
    assert sorted(bodies.values()) == [1] * (2 * ENTRIES - 1) + [2]
    assert len(events(client, "svc", 0)) == ENTRIES
    assert client.xpending("oprc:{orders:0}:outbox", settings.group)["pending"] == 0


class FlakyPublisher(MemoryPublisher):
    """Raises on the first PUT to function ``b``."""

    failed = False

    def put(self, key: str, payload: bytes) -> None:
        if "/async/b/" in key and not self.failed:
            self.failed = True
            raise ConnectionError("link down")
        super().put(key, payload)


def test_a_retry_sends_only_the_puts_that_did_not_go_out(
    store: ObjectStore, settings: Settings
) -> None:
    ev = ObjectEvent()
    for fn in ("a", "b", "c"):
        ev.data_trigger[1].on_update.append(TriggerTarget(cls_id="svc", partition_id=0, fn_id=fn))
    store.create("orders", 0, 1, {1: b"0"}, event=ev)
    for i in range(3):
        store.update("orders", 0, 1, {1: str(i + 1).encode()})
    publisher = FlakyPublisher()
    worker = Worker(settings.replace(retry_base_ms=1, ack_delay_ms=0), publisher=publisher)
    asyncio.run(worker.run_async(burst=True))
    keys = [key for key, _ in publisher.sent]
    assert publisher.failed and worker.stats.retries == 1
    assert len(keys) == len(set(keys)) == 9  # each trigger once, the failed one included
    assert [key.split("/")[4] for key in keys] == ["a", "b", "c"] * 3  # in write order
