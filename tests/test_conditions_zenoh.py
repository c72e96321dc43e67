"""Conditions and the previous value end to end: triggers set through the ODGM data API
(a bad condition refused there, naming the position), writes, and what a Zenoh subscriber
receives, with JSON and protobuf payloads."""

from __future__ import annotations

import time
from typing import Any

import pytest

from oprc_redis_events import ObjData, ObjectStore, Settings, TriggerTarget
from oprc_redis_events.pb.oprc_data_pb2 import ObjMeta
from oprc_redis_events.worker.loop import Worker

from .conftest import ZenohHub
from .helpers import RunningWorker, serving_worker
from .test_objects_api import zget

WHEN = 'old == "pending" && new == "paid"'


def _data(when: str) -> ObjData:
    data = ObjData(metadata=ObjMeta(cls_id="acct", partition_id=0, object_id=7))
    data.entries_str["status"].data = b"pending"
    on_update = data.event.data_trigger_str["status"].on_update
    on_update.append(TriggerTarget(cls_id="billing", fn_id="paid", req_options={"oprc.when": when}))
    on_update.append(
        TriggerTarget(
            cls_id="billing", fn_id="audit", req_options={"oprc.include_old": "true", "k": "v"}
        )
    )
    return data


def _serve(settings: Settings, zenoh_hub: ZenohHub, fmt: str) -> tuple[Worker, RunningWorker]:
    serving = settings.replace(serve_objects=("acct",), payload_format=fmt)
    running = serving_worker(serving, zenoh_hub.session())
    return running.worker, running


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_condition_and_previous_value_through_zenoh(
    settings: Settings, zenoh_hub: ZenohHub, store: ObjectStore, fmt: str
) -> None:
    inbox = zenoh_hub.subscribe("oprc/billing/**")
    worker, running = _serve(settings, zenoh_hub, fmt)
    session: Any = zenoh_hub.session()
    key = "oprc/acct/0/objects/7/set"
    try:
        assert zget(session, key, _data(WHEN).SerializeToString()) == [(True, b"")]
        [(ok, text)] = zget(session, key, _data("old ==").SerializeToString())
        assert not ok and "oprc.when" in text.decode() and "column 7" in text.decode()
        assert store.get_triggers("acct", 0, 7) == _data(WHEN).event  # kept
        for status in (b"paid", b"pending", b"shipped", b"paid"):
            store.update("acct", 0, 7, {"status": status})
        got = inbox.wait_for(5)
        time.sleep(0.3)  # anything else would arrive by now
    finally:
        running.stop()
    paid = [t for t in got if t.request.fn_id == "paid"]
    audit = [t for t in got if t.request.fn_id == "audit"]
    assert len(got) == len(inbox.items) == 5 and len(paid) == 1
    assert paid[0].payload.original_payload == b"paid"
    assert not paid[0].payload.HasField("previous_payload")  # no oprc.include_old
    olds = [t.payload.previous_payload for t in audit]
    assert olds == [b"pending", b"paid", b"pending", b"shipped"]
    assert {t.payload_format for t in got} == {fmt}
    for t in got:
        assert not [k for k in t.request.options if k.startswith("oprc.")]
    assert dict(audit[0].request.options)["k"] == "v"
    if fmt == "json":
        raw = dict(inbox.raw)
        body = next(b for k, b in raw.items() if "/audit/" in k)
        assert b'"previous_payload":[' in body
    assert worker.stats.condition_skips == 3
