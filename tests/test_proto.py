"""The committed protobuf modules match proto/, and proto/ matches WIRE.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from oprc_redis_events.pb import oprc_data_pb2 as data
from oprc_redis_events.pb import oprc_invoke_pb2 as invoke

pytestmark = pytest.mark.quick  # no server: `make quick`

ROOT = Path(__file__).resolve().parent.parent


def test_generated_modules_are_fresh(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    protos = sorted(p.name for p in (ROOT / "proto").glob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            *protos,
        ],
        check=True,
        cwd=ROOT / "proto",
    )
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == [
        "oprc_data_pb2.py",
        "oprc_data_pb2.pyi",
        "oprc_invoke_pb2.py",
        "oprc_invoke_pb2.pyi",
    ]
    for name in generated:
        committed = (ROOT / "oprc_redis_events" / "pb" / name).read_text()
        assert (tmp_path / name).read_text() == committed, (
            f"oprc_redis_events/pb/{name} is stale: regenerate it from proto/ (see README)"
        )


def _fields(message: type) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]


WIRE_FIELDS = {
    data.ObjMeta: {"cls_id": 1, "partition_id": 2, "object_id": 3, "object_id_str": 4},
    data.ValData: {"data": 1, "type": 2},
    data.ObjData: {"metadata": 1, "entries": 2, "event": 3, "entries_str": 4},
    data.ObjectEvent: {"func_trigger": 1, "data_trigger": 2, "data_trigger_str": 3},
    data.FuncTrigger: {"on_complete": 1, "on_error": 2},
    data.DataTrigger: {"on_create": 1, "on_update": 2, "on_delete": 3},
    data.TriggerTarget: {
        "cls_id": 1,
        "partition_id": 2,
        "object_id": 3,
        "fn_id": 4,
        "req_options": 5,
        "object_id_str": 6,
    },
    # previous_payload = 4: our additive field (issue 15, oprc.include_old), not in WIRE.md
    data.TriggerPayload: {"event_info": 1, "original_payload": 3, "previous_payload": 4},
    data.EventInfo: {
        "source_cls_id": 1,
        "source_partition_id": 2,
        "source_object_id": 3,
        "event_type": 4,
        "fn_id": 5,
        "key": 6,
        "timestamp": 7,
        "context": 8,
        "source_object_id_str": 9,
        "key_str": 10,
    },
    invoke.InvocationRequest: {
        "partition_id": 1,
        "cls_id": 3,
        "fn_id": 4,
        "options": 5,
        "payload": 6,
    },
    invoke.ObjectInvocationRequest: {
        "partition_id": 1,
        "object_id": 2,
        "cls_id": 3,
        "fn_id": 4,
        "options": 5,
        "payload": 6,
    },
    invoke.InvocationResponse: {"payload": 1, "status": 2, "headers": 3, "invocation_id": 4},
}


@pytest.mark.parametrize("message", list(WIRE_FIELDS), ids=lambda m: m.__name__)
def test_field_numbers_follow_wire_md(message: type) -> None:
    assert _fields(message) == WIRE_FIELDS[message]
    assert message.DESCRIPTOR.full_name.startswith("oprc.")  # type: ignore[attr-defined]


def test_enums_follow_wire_md() -> None:
    assert dict(data.EventType.items()) == {
        "EVENT_TYPE_UNKNOWN": 0,
        "EVENT_TYPE_FUNC_COMPLETE": 1,
        "EVENT_TYPE_FUNC_ERROR": 2,
        "EVENT_TYPE_DATA_CREATE": 3,
        "EVENT_TYPE_DATA_UPDATE": 4,
        "EVENT_TYPE_DATA_DELETE": 5,
    }
    assert dict(data.ValType.items()) == {"VAL_TYPE_BYTE": 0, "VAL_TYPE_CRDT_MAP": 1}
    assert dict(invoke.ResponseStatus.items()) == {
        "OKAY": 0,
        "INVALID_REQUEST": 1,
        "APP_ERROR": 2,
        "SYSTEM_ERROR": 3,
    }


def test_optional_fields_have_presence() -> None:
    target = data.TriggerTarget(cls_id="c", fn_id="f")
    assert not target.HasField("object_id")
    target.object_id = 0
    assert target.HasField("object_id")
    payload = data.TriggerPayload()
    assert not payload.HasField("original_payload")
    for name in ("fn_id", "key", "source_object_id_str", "key_str"):
        assert not data.EventInfo().HasField(name)
