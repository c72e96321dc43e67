"""The platform's own SDK (oaas-sdk2-py 0.3.6 over oprc-py 0.3.5) on our data API.

Its ``data_manager`` (``get_obj`` / ``set_obj`` / ``del_obj``: ODGM's Zenoh data API, in
Rust) reads and writes objects kept in Redis, and what it writes fires triggers; a function
served by the SDK, invoked by our worker in ``invoke`` delivery, reads and writes its object
through that API, and its write fires the next trigger.  Skipped, saying why, where the SDK
cannot be installed (the ``sdk_python`` fixture).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oprc_redis_events import ObjectEvent, ObjectStore, Settings, TriggerTarget

from .conftest import ZenohHub
from .helpers import RunningWorker, ready_process, serving_worker

SDK_DATA = Path(__file__).resolve().parent / "interop" / "sdk_data.py"
NOTIFY = TriggerTarget(
    cls_id="notify", partition_id=0, fn_id="seen", req_options={"oprc.delivery": "put"}
)


def _sdk_env(zenoh_hub: ZenohHub) -> dict[str, str]:
    return {
        **os.environ,
        "OPRC_ZENOH_PEERS": zenoh_hub.endpoint,
        "OPRC_ZENOH_MODE": "client",
        "RUST_LOG": "warn",
    }


def _worker(settings: Settings, zenoh_hub: ZenohHub, cls_id: str, delivery: str) -> RunningWorker:
    return serving_worker(
        settings.replace(serve_objects=(cls_id,)), zenoh_hub.session(), delivery=delivery
    )


def test_sdk_set_get_del_round_trip_fires_triggers(
    sdk_python: Path, zenoh_hub: ZenohHub, settings: Settings, store: ObjectStore
) -> None:
    inbox = zenoh_hub.subscribe("oprc/notify/**")
    running = _worker(settings, zenoh_hub, "sdkobj", "put")
    try:
        out = subprocess.run(
            [str(sdk_python), str(SDK_DATA), "roundtrip", "sdkobj"],
            env=_sdk_env(zenoh_hub),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        seen = inbox.wait_for(2)
    finally:
        running.stop()
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["absent"] is None
    assert doc["after_set"] == {
        "meta": ["sdkobj", 0, 11],
        "entries": {"1": "pending", "2": "x"},
        "triggers": {"1": 2},
    }
    assert doc["after_update"]["entries"] == {"1": "paid"}  # a full replace: 2 is gone
    assert doc["after_delete"] is None
    assert store.get("sdkobj", 0, 11) is None
    kinds = [(t.payload.event_info.event_type, t.field, t.payload.original_payload) for t in seen]
    assert kinds == [(3, 1, b"pending"), (4, 1, b"paid")]  # CREATE, then UPDATE, of field 1


@pytest.fixture
def sdk_counter(sdk_python: Path, zenoh_hub: ZenohHub) -> Iterator[subprocess.Popen[str]]:
    args = [str(sdk_python), str(SDK_DATA), "serve", "svc", "bump"]
    with ready_process(args, _sdk_env(zenoh_hub), "the SDK function") as proc:
        yield proc


def test_chain_through_an_sdk_function_and_the_data_api(
    sdk_counter: subprocess.Popen[str],
    zenoh_hub: ZenohHub,
    settings: Settings,
    store: ObjectStore,
) -> None:
    """orders.1 updated -> (invoke) svc.bump on svc/0/5, served by the SDK, which reads
    svc/0/5 and sets field 1 + 1 through the SDK's data API -> that UPDATE fires
    notify.seen."""
    svc = ObjectEvent()
    svc.data_trigger[1].on_update.append(NOTIFY)
    store.create("svc", 0, 5, {1: b"0"}, event=svc)
    orders = ObjectEvent()
    orders.data_trigger[1].on_update.append(
        TriggerTarget(cls_id="svc", partition_id=0, object_id=5, fn_id="bump")
    )
    store.create("orders", 0, 1001, {1: b"pending"}, event=orders)
    inbox = zenoh_hub.subscribe("oprc/notify/**")
    running = _worker(settings, zenoh_hub, "svc", "invoke")
    try:
        store.update("orders", 0, 1001, {1: b"paid"})
        [seen] = inbox.wait_for(1, timeout=20)
    finally:
        running.stop()
    info = seen.payload.event_info
    assert (info.source_cls_id, info.source_object_id, info.event_type) == ("svc", 5, 4)
    assert info.key == 1 and seen.payload.original_payload == b"1"
    record = store.get("svc", 0, 5)
    assert record is not None and record.entries[1] == b"1" and record.event == svc


def test_a_loop_through_an_sdk_function_stops_at_the_depth_limit(
    sdk_counter: subprocess.Popen[str],
    zenoh_hub: ZenohHub,
    settings: Settings,
    store: ObjectStore,
) -> None:
    """svc.1 updated -> svc.bump on svc/0/5 -> it sets svc.1 + 1 through the data API ->
    svc.1 updated -> ...: the data API carries no depth, but the write comes while our
    GET of bump on that object is in flight, so it takes that invocation's depth + 1."""
    loop = ObjectEvent()
    loop.data_trigger[1].on_update.append(
        TriggerTarget(cls_id="svc", partition_id=0, object_id=5, fn_id="bump")
    )
    store.create("svc", 0, 5, {1: b"0"}, event=loop)
    running = _worker(settings.replace(max_trigger_depth=3), zenoh_hub, "svc", "invoke")
    try:
        store.update("svc", 0, 5, {1: b"1"})  # depth 0
        deadline = time.monotonic() + 20
        while store.get("svc", 0, 5).entries[1] != b"4" and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.05)
        time.sleep(1.0)  # a loop would go on
        stops = running.worker.stats.depth_stops
    finally:
        running.stop()
    assert store.get("svc", 0, 5).entries[1] == b"4"  # type: ignore[union-attr]
    assert stops == 1  # the event at depth 3 was not dispatched
