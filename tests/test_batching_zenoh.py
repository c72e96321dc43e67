"""Batched delivery end to end through Zenoh: a target with ``oprc.batch_max`` and
``oprc.batch_ms`` gets 7 updates as batches of 3, 3 and 1 (the last when its window ended),
a put-odgm target with a window only gets what gathered in it, in order, JSON and protobuf,
(the writes are made before the worker starts: it reads them in one turn, so the batches
do not depend on the machine's speed),
each element exactly the TriggerPayload the target would get alone."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from oprc_redis_events import ObjectStore, Settings, TriggerTarget
from oprc_redis_events.pb.oprc_data_pb2 import ObjectEvent, TriggerPayload
from oprc_redis_events.protocol.decode import ReceivedBatch, decode_batch
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import ZenohPublisher

from .conftest import ZenohHub
from .helpers import RunningWorker


class Batches:
    """The batches a subscriber received, decoded, with their raw bodies."""

    def __init__(self) -> None:
        self.items: list[ReceivedBatch] = []
        self.raw: list[bytes] = []
        self._lock = threading.Lock()

    def __call__(self, sample: Any) -> None:
        key, body = str(sample.key_expr), sample.payload.to_bytes()
        with self._lock:
            self.raw.append(body)
            self.items.append(decode_batch(key, body))

    def values(self, fn: str) -> list[list[bytes]]:
        with self._lock:
            found = [b for b in self.items if b.request.fn_id == fn]
        return [[t.original_payload for t in b.triggers] for b in found]


def _config() -> ObjectEvent:
    ev = ObjectEvent()
    updates = ev.data_trigger_str["n"].on_update
    sized = {"oprc.batch_max": "3", "oprc.batch_ms": "1000", "k": "v"}
    updates.append(TriggerTarget(cls_id="sink", fn_id="sized", req_options=sized))
    windowed = {"oprc.batch_ms": "1000", "oprc.delivery": "put-odgm", "oprc.include_old": "true"}
    updates.append(TriggerTarget(cls_id="sink", fn_id="windowed", req_options=windowed))
    return ev


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_batches_through_zenoh(
    settings: Settings, zenoh_hub: ZenohHub, store: ObjectStore, fmt: str
) -> None:
    got = Batches()
    session: Any = zenoh_hub.session()
    subscriber = session.declare_subscriber("oprc/sink/**", got)
    time.sleep(0.3)  # the subscription reaches the router
    store.create("acct", 0, 1, {"n": b"0"}, event=_config())
    for n in range(1, 8):  # before the worker starts: it reads them in one turn
        store.update("acct", 0, 1, {"n": b"%d" % n})
    worker = Worker(
        settings.replace(payload_format=fmt),
        publisher=ZenohPublisher(zenoh_hub.session()),
        block_ms=20,
        discover_interval=0.05,
    )
    running = RunningWorker(worker)
    try:
        deadline = time.monotonic() + 10
        while len(got.items) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # anything else would arrive by now
    finally:
        running.stop()
        subscriber.undeclare()
    seven = [b"%d" % n for n in range(1, 8)]
    assert got.values("sized") == [seven[0:3], seven[3:6], seven[6:]]
    windowed = got.values("windowed")
    assert [v for batch in windowed for v in batch] == seven  # in order, none twice
    assert len(windowed) == 1  # all seven read within its 1000 ms window
    assert {b.payload_format for b in got.items} == {fmt}
    sized = [b for b in got.items if b.request.fn_id == "sized"]
    assert dict(sized[0].request.options)["k"] == "v"
    assert not [k for b in got.items for k in b.request.options if k.startswith("oprc.")]
    assert len({b.invocation_id for b in got.items}) == 4
    for b in got.items:
        if b.request.fn_id == "windowed":
            assert "/invokes/windowed/async/" in b.key
            olds = [t.previous_payload for t in b.triggers]
            assert olds == [b"%d" % n for n in range(0, 7)]
        for t in b.triggers:
            assert t.event_info.context["event_id"].startswith("acct/0/")
    if fmt == "json":
        from oprc_redis_events.pb.oprc_invoke_pb2 import InvocationRequest

        doc = json.loads(InvocationRequest.FromString(got.raw[0]).payload)
        assert list(doc) == ["triggers"] and len(doc["triggers"]) == 3
    else:
        assert all(isinstance(t, TriggerPayload) for b in got.items for t in b.triggers)
    assert worker.stats.batches_sent == 4
