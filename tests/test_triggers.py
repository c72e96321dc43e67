"""Trigger configuration validation and the index (pure)."""

from __future__ import annotations

import pytest

from oprc_redis_events import DataTrigger, FuncTrigger, ObjectEvent, TriggerTarget
from oprc_redis_events.errors import InvalidTriggerError
from oprc_redis_events.protocol.triggers import (
    MAX_CONFIG_BYTES,
    MAX_TARGETS,
    Target,
    TargetEdit,
    build_index,
    coerce_event,
    decode_targets,
)

pytestmark = pytest.mark.quick  # no server: `make quick`


def target(**kw: object) -> TriggerTarget:
    base: dict[str, object] = {"cls_id": "svc", "partition_id": 0, "fn_id": "f"}
    base.update(kw)
    return TriggerTarget(**base)  # type: ignore[arg-type]


def test_public_types_use_wire_names() -> None:
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.append(
        TriggerTarget(cls_id="notification_service", partition_id=0, fn_id="send_notification")
    )
    ev.data_trigger_str["name"].on_create.append(target(object_id=5, req_options={"a": "b"}))
    ev.func_trigger["pay"].on_error.append(target(object_id_str="acct-1"))
    assert isinstance(ev.data_trigger[42], DataTrigger)
    assert isinstance(ev.func_trigger["pay"], FuncTrigger)
    assert ObjectEvent.FromString(ev.SerializeToString()) == ev


def test_index_has_one_field_per_event_and_key() -> None:
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.extend([target(fn_id="a"), target(fn_id="b", object_id=9)])
    ev.data_trigger[42].on_delete.append(target(fn_id="c"))
    ev.data_trigger_str["name"].on_create.append(target(fn_id="d", object_id_str="x-1"))
    ev.func_trigger["pay"].on_complete.append(target(fn_id="e", req_options={"k": "v"}))
    ev.func_trigger["pay"].on_error.append(target(fn_id="g"))
    index = build_index(coerce_event(ev))
    assert sorted(index) == ["t:c:name", "t:d:42", "t:fc:pay", "t:fe:pay", "t:u:42"]
    assert decode_targets(index["t:u:42"]) == [
        Target("svc", 0, None, None, "a", {}),
        Target("svc", 0, 9, None, "b", {}),
    ]
    assert decode_targets(index["t:c:name"])[0].object_segment == "x-1"
    assert decode_targets(index["t:fc:pay"])[0].options == {"k": "v"}


def test_empty_and_none_configurations() -> None:
    assert build_index(coerce_event(None)) == {}
    assert build_index(coerce_event(ObjectEvent())) == {}
    assert coerce_event(ObjectEvent().SerializeToString()) == ObjectEvent()


@pytest.mark.parametrize(
    ("tt", "message"),
    [
        (target(cls_id="a/b"), r"data_trigger\[1\].on_update\[0\].*'a/b' contains '/'"),
        (target(fn_id=""), "fn_id must not be empty"),
        (target(fn_id="f*"), "contains '\\*'"),
        (target(object_id=1, object_id_str="x"), "both set"),
        (target(object_id_str="12"), "pass the int 12"),
        (target(object_id_str="a b"), "contains ' '"),
    ],
)
def test_invalid_targets_are_rejected_with_their_place(tt: TriggerTarget, message: str) -> None:
    ev = ObjectEvent()
    ev.data_trigger[1].on_update.append(tt)
    with pytest.raises(InvalidTriggerError, match=message):
        coerce_event(ev)


def test_invalid_keys_are_rejected() -> None:
    ev = ObjectEvent()
    ev.func_trigger["a/b"].on_complete.append(target())
    with pytest.raises(InvalidTriggerError, match="fn_id"):
        coerce_event(ev)
    ev = ObjectEvent()
    ev.data_trigger_str["7"].on_create.append(target())
    with pytest.raises(InvalidTriggerError, match="pass the int 7"):
        coerce_event(ev)


def test_malformed_and_oversized_configurations() -> None:
    with pytest.raises(InvalidTriggerError, match="not an ObjectEvent"):
        coerce_event(b"\xff\xff\xff")
    with pytest.raises(InvalidTriggerError, match="must be an ObjectEvent"):
        coerce_event({"data_trigger": {}})
    too_many = ObjectEvent()
    too_many.data_trigger[1].on_update.extend(target() for _ in range(MAX_TARGETS + 1))
    with pytest.raises(InvalidTriggerError, match=f"limit is {MAX_TARGETS}"):
        coerce_event(too_many)
    too_big = ObjectEvent()
    too_big.data_trigger[1].on_update.append(target(req_options={"x": "y" * MAX_CONFIG_BYTES}))
    with pytest.raises(InvalidTriggerError, match="bytes; the limit"):
        coerce_event(too_big)
    with pytest.raises(InvalidTriggerError, match="bytes; the limit"):
        coerce_event(b"\x00" * (MAX_CONFIG_BYTES + 1))


def test_target_edit_adds_once_and_removes_every_copy() -> None:
    ev = ObjectEvent()
    add = TargetEdit.of("on_update", 42, target(fn_id="a"), add=True)
    assert add.apply(ev) is True
    assert add.apply(ev) is False  # already there: nothing changes
    assert list(ev.data_trigger[42].on_update) == [target(fn_id="a")]
    assert TargetEdit.of("on_error", "pay", target(fn_id="b"), add=True).apply(ev)
    assert TargetEdit.of("on_create", "name", target(fn_id="c"), add=True).apply(ev)
    assert set(build_index(coerce_event(ev))) == {"t:u:42", "t:fe:pay", "t:c:name"}
    ev.data_trigger[42].on_update.append(target(fn_id="a"))  # a duplicate set by other tools
    remove = TargetEdit.of("on_update", 42, target(fn_id="a"), add=False)
    assert remove.apply(ev) is True and remove.apply(ev) is False
    assert 42 not in ev.data_trigger  # no target left for the key: no empty entry either
    other = TargetEdit.of("on_error", "pay", target(fn_id="b", req_options={"k": "v"}), add=False)
    assert other.apply(ev) is False  # options are part of a target
    assert TargetEdit.of("on_delete", "gone", target(), add=False).apply(ev) is False
    assert "gone" not in ev.data_trigger_str


@pytest.mark.parametrize(
    ("event", "key", "tt", "message"),
    [
        ("on_change", 1, target(), "'on_change' is not one of on_create, on_update"),
        ("on_update", "42", target(), "pass the int 42"),
        ("on_update", "a b", target(), "contains ' '"),
        ("on_update", -1, target(), "outside"),
        ("on_complete", 7, target(), "function id must be a string"),
        ("on_error", "a/b", target(), "contains '/'"),
        ("on_update", 1, "svc/0/f", "must be a TriggerTarget, got str"),
        ("on_update", 1, target(cls_id="a/b"), "on_update of 1.*'a/b' contains '/'"),
    ],
)
def test_target_edit_rejects_bad_input(event: str, key: object, tt: object, message: str) -> None:
    with pytest.raises(InvalidTriggerError, match=message):
        TargetEdit.of(event, key, tt, add=True)
