"""Runs under the platform's SDK (oaas-sdk2-py / oprc-py), not under this project.

Serves one function with the SDK's own engine (``OaasEngine.serve_function``, its "agent"
mode) on the invoke key given as argv[1]; the reply says what the SDK decoded.
"""

import asyncio
import json
import sys

import oprc_py
from oprc_py.oprc_py import InvocationResponse


class Handler:
    async def invoke_fn(self, req):  # stateless
        return self._answer(req, None)

    async def invoke_obj(self, req):  # stateful
        return self._answer(req, req.object_id)

    def _answer(self, req, object_id):
        doc = json.loads(bytes(req.payload))
        info = doc["event_info"]
        seen = {
            "cls_id": req.cls_id,
            "fn_id": req.fn_id,
            "partition_id": req.partition_id,
            "object_id": object_id,
            "options": dict(req.options),
            "event_type": info["event_type"],
            "key": info["key"],
            "source": [
                info["source_cls_id"],
                info["source_partition_id"],
                info["source_object_id"],
            ],
            "value": bytes(doc["original_payload"]).decode(),
        }
        return InvocationResponse(payload=json.dumps(seen).encode(), status=0)


async def main() -> None:
    engine = oprc_py.OaasEngine()
    await engine.serve_function(sys.argv[1], asyncio.get_running_loop(), Handler())
    print("ready", flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
