"""Interop with the platform's own SDK (PyPI oaas-sdk2-py 0.3.6 over oprc-py 0.3.5).

A function served by the SDK's engine (a Zenoh queryable on the invoke key, its "agent"
mode) receives a trigger from our worker in ``invoke`` delivery, decodes our
``ObjectInvocationRequest`` and JSON ``TriggerPayload`` with its own (Rust/prost) code, and
its response is recorded as FUNC_COMPLETE on the target object.  The SDK is installed into
a venv of its own; the test is skipped, saying why, where that cannot be done.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from oprc_redis_events import ObjectEvent, ObjectStore, Settings, TriggerTarget
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import ZenohPublisher

from .conftest import ZenohHub
from .helpers import RunningWorker, outbox, ready_process

AGENT = Path(__file__).resolve().parent / "interop" / "sdk_agent.py"


@pytest.fixture
def sdk_agent(sdk_python: Path, zenoh_hub: ZenohHub) -> Iterator[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "OPRC_ZENOH_PEERS": zenoh_hub.endpoint,
        "OPRC_ZENOH_MODE": "client",
        "RUST_LOG": "warn",
    }
    args = [str(sdk_python), str(AGENT), "oprc/svc/0/objects/5/invokes/work"]
    with ready_process(args, env, "the SDK agent") as proc:
        yield proc


def test_a_trigger_reaches_an_sdk_served_function(
    sdk_agent: subprocess.Popen[str],
    store: ObjectStore,
    client: redis.Redis,
    settings: Settings,
    zenoh_hub: ZenohHub,
) -> None:
    svc = ObjectEvent()
    svc.func_trigger["work"].on_complete.append(
        TriggerTarget(
            cls_id="notify", partition_id=0, fn_id="done", req_options={"oprc.delivery": "put"}
        )
    )
    store.create("svc", 0, 5, {}, event=svc)
    orders = ObjectEvent()
    orders.data_trigger[1].on_update.append(
        TriggerTarget(
            cls_id="svc", partition_id=0, object_id=5, fn_id="work", req_options={"channel": "sdk"}
        )
    )
    store.create("orders", 0, 1001, {1: b"pending"}, event=orders)
    worker = Worker(
        settings,
        delivery="invoke",
        publisher=ZenohPublisher(zenoh_hub.session()),
        block_ms=20,
        discover_interval=0.05,
    )
    running = RunningWorker(worker)
    try:
        store.update("orders", 0, 1001, {1: b"paid"})
        deadline = time.monotonic() + 20
        while not client.exists("oprc:{svc:0}:outbox") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        running.stop()
    [entry] = outbox(client, "svc", 0)
    [event] = entry.events
    assert event.event_type == 1 and event.key == "work"  # FUNC_COMPLETE of the SDK function
    seen = json.loads(event.payload or b"{}")
    assert seen["cls_id"] == "svc" and seen["fn_id"] == "work" and seen["object_id"] == 5
    assert seen["event_type"] == 4 and seen["key"] == 1 and seen["value"] == "paid"
    assert seen["source"] == ["orders", 0, 1001]
    assert seen["options"]["channel"] == "sdk" and seen["options"]["depth"] == "0"
