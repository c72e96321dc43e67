"""Runs under the platform's SDK (oaas-sdk2-py / oprc-py), not under this project.

Uses the SDK's own data API (``OaasEngine.data_manager``: ODGM's Zenoh GET, set and
DELETE) against whatever serves it, here oprc-redis-events.

    sdk_data.py roundtrip CLS      set, get, set again, delete, get; prints one JSON line
    sdk_data.py serve CLS FN       serves FN on oprc/CLS/0/objects/*/invokes/FN: each call
                                   reads its object, adds 1 to field 1 and writes it back
"""

import asyncio
import json
import sys

import oprc_py
from oprc_py.oprc_py import InvocationResponse


def _notify_event():
    target = oprc_py.PyTriggerTarget("notify", 0, "seen", None, {"oprc.delivery": "put"})
    event = oprc_py.PyObjectEvent()
    for kind in (oprc_py.DataTriggerType.OnCreate, oprc_py.DataTriggerType.OnUpdate):
        event.manage_data_trigger(1, target, kind, True)
    return event


def _shown(obj):
    if obj is None:
        return None
    triggers = obj.event.get_data_triggers() if obj.event is not None else {}
    return {
        "meta": [obj.meta.cls_id, obj.meta.partition_id, obj.meta.object_id],
        "entries": {str(k): bytes(v).decode() for k, v in obj.entries.items()},
        "triggers": {str(k): len(v.on_create) + len(v.on_update) for k, v in triggers.items()},
    }


async def roundtrip(cls_id):
    data = oprc_py.OaasEngine().data_manager
    out = {"absent": _shown(data.get_obj(cls_id, 0, 11))}
    meta = oprc_py.ObjectMetadata(cls_id, 0, 11)
    first = oprc_py.ObjectData(meta, {1: b"pending", 2: b"x"}, _notify_event())
    data.set_obj(first)
    got = data.get_obj(cls_id, 0, 11)
    out["after_set"] = _shown(got)
    got.entries = {1: list(b"paid")}
    data.set_obj(got)
    out["after_update"] = _shown(data.get_obj(cls_id, 0, 11))
    data.del_obj(cls_id, 0, 11)
    await asyncio.sleep(0.5)
    out["after_delete"] = _shown(data.get_obj(cls_id, 0, 11))
    print(json.dumps(out), flush=True)


class Counter:
    def __init__(self, engine):
        self.data = engine.data_manager

    async def invoke_fn(self, req):
        return InvocationResponse(payload=b"stateless", status=0)

    async def invoke_obj(self, req):
        obj = self.data.get_obj(req.cls_id, req.partition_id, req.object_id)
        count = int(bytes(obj.entries.get(1, b"0")).decode()) + 1
        entries = dict(obj.entries)
        entries[1] = list(str(count).encode())
        obj.entries = entries
        self.data.set_obj(obj)
        return InvocationResponse(payload=str(count).encode(), status=0)


async def serve(cls_id, fn_id):
    engine = oprc_py.OaasEngine()
    key = f"oprc/{cls_id}/0/objects/*/invokes/{fn_id}"
    await engine.serve_function(key, asyncio.get_running_loop(), Counter(engine))
    print("ready", flush=True)
    await asyncio.Event().wait()


if sys.argv[1] == "roundtrip":
    asyncio.run(roundtrip(sys.argv[2]))
else:
    asyncio.run(serve(sys.argv[2], sys.argv[3]))
