"""Operator helpers without I/O: target specs, trigger listings and ``explain``.

A target spec names a trigger target the way its Zenoh key does:
``cls/pid/fn`` (stateless) or ``cls/pid/objects/oid/fn`` (stateful).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

from ..errors import InvalidIdError, InvalidTriggerError
from ..pb.oprc_data_pb2 import DataTrigger, ObjectEvent, TriggerTarget
from ..protocol.batching import batch_settings
from ..protocol.coalescing import COALESCE_MS_OPTION
from ..protocol.codes import DATA_EVENTS, FUNC_EVENTS, by_code
from ..protocol.conditions import WHEN_OPTION, ConditionFailed, holds, variables
from ..protocol.diff import Change
from ..protocol.keys import (
    FieldKey,
    check_utf8,
    field_name,
    object_segment,
    parse_object_segment,
    validate_id,
    validate_partition,
)

__all__ = [
    "DATA_SLOTS",
    "FUNC_SLOTS",
    "describe_target",
    "explain",
    "list_triggers",
    "parse_target",
]

DATA_SLOTS = tuple(e.slot for e in DATA_EVENTS)
FUNC_SLOTS = tuple(e.slot for e in FUNC_EVENTS)


TARGET_FORMS = (
    "write cls/pid/fn (e.g. notification_service/0/send_notification) or "
    "cls/pid/objects/oid/fn for a function on an object (e.g. audit_log/0/objects/1/record)"
)


def parse_target(spec: str, options: Mapping[str, str] | None = None) -> TriggerTarget:
    """``cls/pid/fn`` or ``cls/pid/objects/oid/fn`` as a ``TriggerTarget``."""
    parts = spec.split("/")
    if not (len(parts) == 3 or (len(parts) == 5 and parts[2] == "objects")):
        raise InvalidTriggerError(f"target {spec!r} is not a target: {TARGET_FORMS}")
    cls_id, pid, fn_id = parts[0], parts[1], parts[-1]
    try:
        validate_id("class", cls_id)
        validate_id("function", fn_id)
        if not pid.isdecimal():
            raise InvalidIdError(f"partition {pid!r} is not a number")
        target = TriggerTarget(
            cls_id=cls_id, partition_id=validate_partition(int(pid)), fn_id=fn_id
        )
        if len(parts) == 5:
            oid = parse_object_segment(parts[3])
            object_segment(oid)  # validates
            if isinstance(oid, int):
                target.object_id = oid
            else:
                target.object_id_str = oid
    except InvalidIdError as err:
        raise InvalidTriggerError(f"target {spec!r}: {err}; {TARGET_FORMS}") from None
    for key, value in (options or {}).items():
        check_utf8("--option", f"{key}={value}", InvalidTriggerError)
    target.req_options.update(options or {})
    return target


def describe_target(t: TriggerTarget) -> str:
    where = f"{t.cls_id}/{t.partition_id}"
    if t.HasField("object_id_str"):
        where += f"/objects/{t.object_id_str}"
    elif t.HasField("object_id"):
        where += f"/objects/{t.object_id}"
    options = "".join(f" {k}={v}" for k, v in sorted(t.req_options.items()))
    return f"{where}/{t.fn_id}{options}"


def _data_trigger(event: ObjectEvent, key: FieldKey, create: bool) -> DataTrigger | None:
    if isinstance(key, int):
        return event.data_trigger[key] if create or key in event.data_trigger else None
    return event.data_trigger_str[key] if create or key in event.data_trigger_str else None


def list_triggers(event: ObjectEvent) -> Iterator[tuple[str, str, str, TriggerTarget]]:
    """(kind, key, slot, target) of every target: kind is data_trigger, data_trigger_str or
    func_trigger."""
    for key_int, dt in sorted(event.data_trigger.items()):
        for slot in DATA_SLOTS:
            for t in getattr(dt, slot):
                yield "data_trigger", str(key_int), slot, t
    for key_str, dt in sorted(event.data_trigger_str.items()):
        for slot in DATA_SLOTS:
            for t in getattr(dt, slot):
                yield "data_trigger_str", key_str, slot, t
    for fn_id, ft in sorted(event.func_trigger.items()):
        for slot in FUNC_SLOTS:
            for t in getattr(ft, slot):
                yield "func_trigger", fn_id, slot, t


#: where an explained change happens: (cls, partition, object id as spelled in keys)
Source = tuple[str, int, str]


def explain(
    event: ObjectEvent,
    changes: list[Change],
    depth: int,
    max_depth: int,
    source: Source = ("", 0, ""),
) -> list[str]:
    """Readable lines: each change, the targets it fires and why, or why none (the depth
    limit, a condition ``oprc.when`` that is false or fails, with the values it saw)."""
    lines: list[str] = []
    if not changes:
        return ["no field changes: nothing fires (unchanged values emit no event)"]
    for ch in changes:
        name, slot = ch.kind.name, ch.kind.slot
        where = (
            f"data_trigger[{ch.key}]"
            if isinstance(ch.key, int)
            else f"data_trigger_str[{ch.key!r}]"
        )
        head = f"field {ch.key}: {_show(ch.old)} -> {_show(ch.new)} = {name}"
        holder = _data_trigger(event, ch.key, create=False)
        targets = list(getattr(holder, slot)) if holder is not None else []
        if not targets:
            lines.append(f"{head}: no target in {where}.{slot}, nothing fires")
            continue
        for t in targets:
            verdict = (
                _delivery(t, ch, _verdict(t, ch, depth, source))
                if depth < max_depth
                else f"NOT dispatched: depth {depth} >= max {max_depth}"
            )
            lines.append(f"{head} -> {describe_target(t)} ({where}.{slot}; {verdict})")
    return lines


def _show(value: bytes | None) -> str:
    return "(absent)" if value is None else repr(value)


def _verdict(t: TriggerTarget, ch: Change, depth: int, source: Source) -> str:
    """``dispatched`` or why not, for a target's condition (when it has one)."""
    expression = t.req_options.get(WHEN_OPTION)
    if expression is None:
        return "dispatched"
    cls_id, partition, object_id = source
    values = variables(
        old=ch.old, new=ch.new, event_type=ch.kind.number, key=field_name(ch.key),
        object_id=object_id, cls=cls_id, partition=partition, depth=depth,
    )  # fmt: skip
    seen = f"old={_cel(values['old'])}, new={_cel(values['new'])}"
    try:
        matched = holds(expression, values)
    except ConditionFailed as err:
        return f"NOT dispatched: condition {expression} failed ({err}), taken as false; {seen}"
    if matched:
        return f"dispatched: condition {expression} is true; {seen}"
    return f"NOT dispatched: condition {expression} is false; {seen}"


def _delivery(t: TriggerTarget, ch: Change, verdict: str) -> str:
    """``verdict``, with what batching (``oprc.batch_max`` / ``oprc.batch_ms``) or
    coalescing (``oprc.coalesce_ms``, UPDATEs only) does to a dispatched trigger for ``t``."""
    if verdict.startswith("NOT"):
        return verdict
    batched = batch_settings(t.req_options)
    if batched is not None:
        size, ms = batched
        limits = []
        if size is not None:
            limits.append(f"up to {size} triggers")
        if ms is not None:
            limits.append(f"those gathered within {ms} ms of the first")
        return f"{verdict}; batched: one invocation carries {' or '.join(limits)}"
    window = t.req_options.get(COALESCE_MS_OPTION)
    if window is None or ch.kind.number != by_code("u").number:
        return verdict
    return (
        f"{verdict}; coalesced: the updates of this field within {window} ms of the first "
        "go out as one trigger, the last"
    )


def _cel(value: object) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)
