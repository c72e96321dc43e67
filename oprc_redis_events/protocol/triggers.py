"""Trigger configuration: validation, and the index the Lua write path matches against.

The public types are the platform's own protobuf messages (``ObjectEvent``, ``DataTrigger``,
``FuncTrigger``, ``TriggerTarget``), so a configuration built here is byte-compatible with
the platform's tools and ``ev.data_trigger[42].on_update.append(...)`` works as in the seed.

The index turns a configuration into hash fields of the object's meta hash, one per
(event, key), each holding the encoded targets::

    t:c:<field>   targets of DATA_CREATE on that field     (field = hash field name)
    t:u:<field>   DATA_UPDATE
    t:d:<field>   DATA_DELETE
    t:fc:<fn_id>  FUNC_COMPLETE of that function
    t:fe:<fn_id>  FUNC_ERROR

so the write script finds the targets of a change with one HGET, whatever the size of
the whole configuration.  A value whose targets need the field's previous value (a
condition ``oprc.when`` or ``oprc.include_old``, see :mod:`.conditions`) starts with
:data:`OLD_MARK`: the script then strips the mark and adds the old value to the entry
(``q<i>``); every other value, and so every other entry, stays as it was.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from ..errors import InvalidIdError, InvalidTriggerError
from ..pb.oprc_data_pb2 import DataTrigger, FuncTrigger, ObjectEvent, TriggerTarget
from .batching import BATCH_MAX_OPTION, BATCH_MS_OPTION, check_batch
from .coalescing import COALESCE_MS_OPTION, check_coalesce
from .codes import DATA_EVENTS, EVENTS, FUNC_EVENTS, by_slot
from .conditions import INCLUDE_OLD_OPTION, WHEN_OPTION, check_options, needs_old
from .keys import FieldKey, field_name, object_segment, validate_id, validate_partition
from .limits import DEFAULT_LIMITS, Limits
from .targets import (
    Target,
    UnreadableTarget,
    decode_targets,
    encode_targets,
    only_targets,
)

__all__ = [
    "DEFAULT_LIMITS",
    "INDEX_PREFIX",
    "MAX_CONFIG_BYTES",
    "MAX_TARGETS",
    "OLD_MARK",
    "TRIGGER_EVENTS",
    "Target",
    "TargetEdit",
    "UnreadableTarget",
    "build_index",
    "check_target",
    "coerce_event",
    "decode_targets",
    "encode_targets",
    "only_targets",
]

INDEX_PREFIX = "t:"
#: the first byte of an index value whose targets need the previous value (no msgpack
#: list starts with it); lib/events.lua tests for it (byte 33)
OLD_MARK = b"!"
#: how the worker can deliver a trigger; a target's ``req_options["oprc.delivery"]``
#: overrides the worker's choice for that target
DELIVERY_MODES = ("put", "put-odgm", "invoke")
DELIVERY_OPTION = "oprc.delivery"
MAX_TARGETS = DEFAULT_LIMITS.max_targets_per_trigger  # the defaults (Settings: the limits)
MAX_CONFIG_BYTES = DEFAULT_LIMITS.max_config_bytes

#: the events a target can be added for (their slots): field events, then function events
TRIGGER_EVENTS = tuple(e.slot for e in EVENTS)


def check_target(target: Target) -> None:
    """The one rule for a trigger target, applied by the API to a configuration and by the
    worker to every target it reads back from Redis: raise :class:`InvalidIdError` naming
    what is wrong (an id that cannot be part of a Zenoh key, a partition out of range, both
    object ids, an unknown delivery mode)."""
    if isinstance(target, UnreadableTarget):
        raise InvalidIdError(target.reason)
    mode = target.options.get(DELIVERY_OPTION)
    _check(
        target.cls_id,
        target.fn_id,
        target.partition_id,
        target.object_id,
        target.object_id_str,
        mode,
        target.options.get(WHEN_OPTION),
        target.options.get(INCLUDE_OLD_OPTION),
        target.options.get(BATCH_MAX_OPTION),
        target.options.get(BATCH_MS_OPTION),
        target.options.get(COALESCE_MS_OPTION),
    )


@functools.lru_cache(maxsize=4096)
def _check(
    cls_id: str,
    fn_id: str,
    partition_id: int,
    object_id: int | None,
    object_id_str: str | None,
    mode: str | None,
    when: str | None = None,
    include_old: str | None = None,
    batch_max: str | None = None,
    batch_ms: str | None = None,
    coalesce: str | None = None,
) -> None:
    # Cached: a target is checked once, not per trigger (errors are not cached).
    validate_id("cls_id", cls_id)
    validate_id("fn_id", fn_id)
    validate_partition(partition_id)
    if object_id is not None and object_id_str is not None:
        raise InvalidIdError("object_id and object_id_str are both set; set one")
    if object_id_str is not None:
        object_segment(object_id_str)
    elif object_id is not None:
        object_segment(object_id)
    if mode is not None and mode not in DELIVERY_MODES:
        raise InvalidIdError(
            f"req_options {DELIVERY_OPTION}={mode!r} is not one of {', '.join(DELIVERY_MODES)}"
        )
    if any(o is not None for o in (when, include_old, batch_max, batch_ms, coalesce)):
        try:
            check_options(when, include_old)
            check_batch(batch_max, batch_ms)
            check_coalesce(coalesce, batch_max, batch_ms)
        except ValueError as err:
            raise InvalidIdError(f"target {cls_id}.{fn_id}: {err}") from None


def coerce_event(event: object, limits: Limits = DEFAULT_LIMITS) -> ObjectEvent | None:
    """Accept an ``ObjectEvent``, its serialized bytes or ``None``; validate it (and its
    size and the targets of each trigger against ``limits``)."""
    if event is None:
        return None
    if isinstance(event, (bytes, bytearray, memoryview)):
        if len(event) > limits.max_config_bytes:
            raise InvalidTriggerError(
                limits.exceeded(f"trigger configuration is {len(event)} bytes", "max_config_bytes")
            )
        parsed = ObjectEvent()
        try:
            parsed.ParseFromString(bytes(event))
        except DecodeError as err:
            raise InvalidTriggerError(
                f"trigger configuration is not an ObjectEvent: {err}"
            ) from err
        event = parsed
    if not isinstance(event, ObjectEvent):
        raise InvalidTriggerError(
            f"event must be an ObjectEvent (or its serialized bytes), got {type(event).__name__}"
        )
    _validate(event, limits)
    return event


def _validate(event: ObjectEvent, limits: Limits) -> None:
    size = event.ByteSize()
    if size > limits.max_config_bytes:
        raise InvalidTriggerError(
            limits.exceeded(f"trigger configuration is {size} bytes", "max_config_bytes")
        )
    counts: dict[str, int] = {}
    for where, target in _all_targets(event):
        trigger = where.rpartition("[")[0]  # data_trigger[42].on_update
        counts[trigger] = counts.get(trigger, 0) + 1
        _validate_target(where, target)
    for trigger, count in counts.items():
        if count > limits.max_targets_per_trigger:
            raise InvalidTriggerError(
                limits.exceeded(f"trigger {trigger} has {count} targets", "max_targets_per_trigger")
            )


def _all_targets(event: ObjectEvent) -> Iterator[tuple[str, TriggerTarget]]:
    for fn_id, ft in event.func_trigger.items():
        _check_key(validate_id, "func_trigger key (fn_id)", fn_id)
        for kind in FUNC_EVENTS:
            for i, t in enumerate(getattr(ft, kind.slot)):
                yield f"func_trigger[{fn_id!r}].{kind.slot}[{i}]", t
    for key, dt in event.data_trigger.items():
        yield from _data_targets(f"data_trigger[{key}]", dt)
    for skey, dt in event.data_trigger_str.items():
        _check_key(lambda _kind, key: field_name(key), "data_trigger_str key", skey)
        yield from _data_targets(f"data_trigger_str[{skey!r}]", dt)


def _data_targets(where: str, dt: DataTrigger) -> Iterator[tuple[str, TriggerTarget]]:
    for kind in DATA_EVENTS:
        for i, t in enumerate(getattr(dt, kind.slot)):
            yield f"{where}.{kind.slot}[{i}]", t


def _check_key(check: Callable[[str, str], object], kind: str, key: str) -> None:
    try:
        check(kind, key)
    except InvalidIdError as err:
        raise InvalidTriggerError(f"invalid trigger configuration: {err}") from err


def _validate_target(where: str, t: TriggerTarget) -> None:
    try:
        check_target(to_target(t))  # the rule the worker applies to what it reads back
    except InvalidIdError as err:
        raise InvalidTriggerError(f"invalid trigger target {where}: {err}") from err


def to_target(t: TriggerTarget) -> Target:
    return Target(
        cls_id=t.cls_id,
        partition_id=t.partition_id,
        object_id=t.object_id if t.HasField("object_id") else None,
        object_id_str=t.object_id_str if t.HasField("object_id_str") else None,
        fn_id=t.fn_id,
        options=dict(t.req_options),
    )


def _encoded(targets: Iterable[TriggerTarget]) -> bytes | None:
    converted = [to_target(t) for t in targets]
    if not converted:
        return None
    blob = encode_targets(converted)
    return OLD_MARK + blob if any(needs_old(t.options) for t in converted) else blob


def build_index(event: ObjectEvent | None) -> dict[str, bytes]:
    """Index fields (``t:<code>:<key>`` -> encoded targets) for a validated configuration."""
    index: dict[str, bytes] = {}
    if event is None:
        return index

    def put(code: str, key: str, targets: Iterable[TriggerTarget]) -> None:
        blob = _encoded(targets)
        if blob is not None:
            index[f"{INDEX_PREFIX}{code}:{key}"] = blob

    for fn_id, ft in event.func_trigger.items():
        for kind in FUNC_EVENTS:
            put(kind.code, fn_id, getattr(ft, kind.slot))
    data = [(field_name(k), dt) for k, dt in event.data_trigger.items()]
    data += [(field_name(k), dt) for k, dt in event.data_trigger_str.items()]
    for name, dt in data:
        for kind in DATA_EVENTS:
            put(kind.code, name, getattr(dt, kind.slot))
    return index


__all__ += ["DataTrigger", "FuncTrigger", "ObjectEvent", "TriggerTarget", "to_target"]


@dataclass(frozen=True, slots=True)
class TargetEdit:
    """Adding (or removing) one target of one event of one field key or function id.

    ``event`` is on_create, on_update, on_delete (``key``: a field key) or on_complete,
    on_error (``key``: a function id).  Built with :meth:`of`, which validates it.
    """

    event: str
    key: FieldKey
    target: TriggerTarget
    add: bool

    @classmethod
    def of(cls, event: object, key: object, target: object, *, add: bool) -> TargetEdit:
        if event not in TRIGGER_EVENTS:
            raise InvalidTriggerError(f"event {event!r} is not one of {', '.join(TRIGGER_EVENTS)}")
        if not _is_data(event):
            _check_key(validate_id, "function id", key)  # type: ignore[arg-type]
        else:
            _check_key(lambda _kind, k: field_name(k), "field key", key)  # type: ignore[arg-type]
        if not isinstance(target, TriggerTarget):
            raise InvalidTriggerError(
                f"target must be a TriggerTarget, got {type(target).__name__}"
            )
        if add:
            _validate_target(f"{event} of {key!r}", target)
        return cls(str(event), key, target, add)  # type: ignore[arg-type]

    def _holders(self, event: ObjectEvent) -> Any:
        if not _is_data(self.event):
            return event.func_trigger
        return event.data_trigger if isinstance(self.key, int) else event.data_trigger_str

    def apply(self, event: ObjectEvent) -> bool:
        """Edit ``event`` in place; whether anything changed (adding a target that is there,
        or removing one that is not, changes nothing)."""
        holders = self._holders(event)
        if not self.add and self.key not in holders:
            return False
        targets = getattr(holders[self.key], self.event)
        if self.add:
            if self.target in targets:
                return False
            targets.append(self.target)
            return True
        keep = [t for t in targets if t != self.target]
        if len(keep) == len(targets):
            return False
        del targets[:]
        targets.extend(keep)
        if holders[self.key].ByteSize() == 0:  # no target left for this key
            del holders[self.key]
        return True

    def near_misses(self, event: ObjectEvent) -> list[TriggerTarget]:
        """The targets of this edit's event and key that name the same function as its
        target but differ in ``req_options`` (why a remove found nothing)."""
        holders = self._holders(event)
        if self.key not in holders:
            return []
        mine = TriggerTarget()
        mine.CopyFrom(self.target)
        mine.req_options.clear()
        found = []
        for t in getattr(holders[self.key], self.event):
            bare = TriggerTarget()
            bare.CopyFrom(t)
            bare.req_options.clear()
            if bare == mine and t != self.target:
                found.append(t)
        return found


def _is_data(slot: object) -> bool:
    kind = by_slot(str(slot))
    return kind is not None and kind.data
