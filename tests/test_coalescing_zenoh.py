"""Coalescing end to end through Zenoh (JSON and protobuf): 5 quick updates of one field go
out as one trigger with the last value and the first old value (``oprc.include_old``); two
fields updated in turn give two triggers in the order of their first update; a DELETE ends
its field's window (the coalesced update, then the delete); and, with the worker running, a
window that nothing else ends goes out when its ``oprc.coalesce_ms`` have passed.  (The
first writes are made before the worker starts: it reads them in one turn.)"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from oprc_redis_events import ObjectStore, Settings, TriggerTarget
from oprc_redis_events.pb.oprc_data_pb2 import ObjectEvent
from oprc_redis_events.protocol.decode import ReceivedTrigger, decode_trigger
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import ZenohPublisher

from .conftest import ZenohHub
from .helpers import RunningWorker


class Received:
    """The triggers a subscriber received, decoded."""

    def __init__(self) -> None:
        self.items: list[ReceivedTrigger] = []
        self._lock = threading.Lock()

    def __call__(self, sample: Any) -> None:
        got = decode_trigger(str(sample.key_expr), sample.payload.to_bytes())
        with self._lock:
            self.items.append(got)

    def shown(self) -> list[tuple[int, str, bytes | None, bytes | None]]:
        """(event type, object and field, new value, previous value) of each trigger."""
        with self._lock:
            items = list(self.items)
        found = []
        for t in items:
            p, info = t.payload, t.payload.event_info
            new = p.original_payload if p.HasField("original_payload") else None
            old = p.previous_payload if p.HasField("previous_payload") else None
            where = f"{info.source_object_id}.{info.key_str}"
            found.append((info.event_type, where, new, old))
        return found

    def wait(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.items) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # anything else would arrive by now


def _config() -> ObjectEvent:
    ev = ObjectEvent()
    opts = {"oprc.coalesce_ms": "1000", "oprc.include_old": "true"}
    for name in ("a", "b"):
        target = TriggerTarget(cls_id="sink", fn_id="co", req_options=opts)
        ev.data_trigger_str[name].on_update.append(target)
        ev.data_trigger_str[name].on_delete.append(target)
    return ev


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_coalescing_through_zenoh(
    settings: Settings, zenoh_hub: ZenohHub, store: ObjectStore, fmt: str
) -> None:
    got = Received()
    session: Any = zenoh_hub.session()
    subscriber = session.declare_subscriber("oprc/sink/**", got)
    time.sleep(0.3)  # the subscription reaches the router
    store.create("acct", 0, 1, {"a": b"0", "b": b"0"}, event=_config())
    store.create("acct", 0, 2, {"a": b"0", "b": b"0"}, event=_config())
    for n in range(1, 6):  # object 1: a and b in turn; object 2: a, then deleted
        store.update("acct", 0, 1, {"a": b"a%d" % n})
        store.update("acct", 0, 1, {"b": b"b%d" % n})
        store.update("acct", 0, 2, {"a": b"%d" % n})
    store.delete_field("acct", 0, 2, "a")
    worker = Worker(
        settings.replace(payload_format=fmt, ack_delay_ms=50),
        publisher=ZenohPublisher(zenoh_hub.session()),
        block_ms=20,
        discover_interval=0.05,
    )
    running = RunningWorker(worker)
    try:
        got.wait(4)
        assert got.shown() == [
            # the delete ends 2.a's window, and so the target's windows opened before it
            (4, "1.a", b"a5", b"0"),  # in the order of their first update
            (4, "1.b", b"b5", b"0"),
            (4, "2.a", b"5", b"0"),
            (5, "2.a", None, b"5"),  # the delete's own trigger, after its field's update
        ]
        store.update("acct", 0, 1, {"b": b"late"})  # nothing else comes: its window ends
        got.wait(5)
    finally:
        running.stop()
        subscriber.undeclare()
    assert got.shown()[4:] == [(4, "1.b", b"late", b"b5")]
    assert {t.payload_format for t in got.items} == {fmt}
    assert len({t.invocation_id for t in got.items}) == 5
    assert worker.stats.updates_coalesced == 12
