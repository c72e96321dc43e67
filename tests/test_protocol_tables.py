"""The two protocol tables (event kinds, Zenoh keys) agree with the platform and with Lua."""

from __future__ import annotations

import pytest

from oprc_redis_events import DataTrigger, EventType, FuncTrigger
from oprc_redis_events.lua.loader import source
from oprc_redis_events.protocol import zenoh_keys
from oprc_redis_events.protocol.codes import EVENTS, by_code, by_number, by_slot, lua_table
from oprc_redis_events.protocol.diff import field_changes

pytestmark = pytest.mark.quick  # no server: `make quick`


def test_event_kinds_match_the_platforms_enum_and_trigger_messages() -> None:
    for kind in EVENTS:
        assert EventType.Value(f"EVENT_TYPE_{kind.name}") == kind.number
        holder = DataTrigger if kind.data else FuncTrigger
        assert kind.slot in holder.DESCRIPTOR.fields_by_name
        assert by_code(kind.code) is by_number(kind.number) is by_slot(kind.slot) is kind
    assert by_number(0) is None and by_slot("on_nothing") is None


@pytest.mark.parametrize("script", ["write", "capture"])
def test_the_lua_scripts_get_the_table(script: str) -> None:
    assert f"local EVENT_TYPES = {lua_table()}" in source(script)
    assert lua_table() == '{c = "3", u = "4", d = "5", fc = "1", fe = "2"}'


@pytest.mark.parametrize("delivery", list(zenoh_keys.LAYOUTS))
@pytest.mark.parametrize("oid", [None, "7", "order-7"])
def test_keys_parse_back(delivery: str, oid: str | None) -> None:
    key = zenoh_keys.key(delivery, "svc", 3, "fn", oid, "inv-1")
    parts = zenoh_keys.parse_key(key)
    assert parts is not None
    assert (parts.cls_id, parts.partition, parts.object_segment, parts.fn_id) == (
        "svc",
        "3",
        oid,
        "fn",
    )
    assert parts.invocation_id == (None if delivery == "invoke" else "inv-1")


def test_keys_of_the_wire_contract() -> None:
    assert zenoh_keys.key("put", "c", 0, "f", None, "i") == "oprc/c/0/async/f/i"
    assert zenoh_keys.key("put", "c", 0, "f", "9", "i") == "oprc/c/0/objects/9/async/f/i"
    assert zenoh_keys.key("put-odgm", "c", 0, "f", None, "i") == "oprc/c/0/invokes/f/async/i"
    assert zenoh_keys.key("invoke", "c", 0, "f", "9") == "oprc/c/0/objects/9/invokes/f"
    for bad in ("oprc/c/0", "other/c/0/async/f/i", "oprc/c/0/async/f", "oprc/c/0/x/f/i"):
        assert zenoh_keys.parse_key(bad) is None, bad


def test_a_type_only_change_is_an_update() -> None:
    [change] = field_changes({1: (b"x", 1)}, {1: (b"x", 0)})
    assert change.kind.name == "DATA_UPDATE"
    assert field_changes({1: (b"x", 0)}, {1: (b"x", 0)}) == []
    kinds = [c.kind.name for c in field_changes({1: (b"a", 0), 2: (b"b", 0)}, {3: (b"c", 0)}, [2])]
    assert kinds == ["DATA_CREATE", "DATA_DELETE"]
