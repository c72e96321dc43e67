"""Operations on objects without I/O: what to send to Redis and how to read the reply.

The sync and asyncio stores are thin faces over these functions: each builds a
:class:`ScriptCall` or a list of read commands here, sends it, and hands the reply back
here to be turned into a result or an exception.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import (
    InvalidIdError,
    InvalidValueError,
    ObjectExistsError,
    ObjectNotFoundError,
    OprcEventsError,
)
from ..pb.oprc_data_pb2 import ObjectEvent, ValData
from ..protocol.keys import (
    FieldKey,
    PartitionKeys,
    as_text,
    check_utf8,
    field_name,
    object_segment,
    validate_id,
)
from ..protocol.limits import DEFAULT_LIMITS, Limits
from ..protocol.switch import SWITCH_KEY
from ..protocol.triggers import TargetEdit, build_index, coerce_event
from .records import ObjectRecord, check_types, decode_event, parse_record

__all__ = [
    "ObjectRecord",
    "ObjectRef",
    "ScriptCall",
    "TriggersChanged",
    "WriteResult",
    "build_write",
    "check_types",
    "edit_conflict",
    "edited_triggers",
    "encode_entries",
    "parse_record",
    "parse_reply_entry",
    "parse_write",
]

SET_MODES: Final = ("create", "update", "upsert", "replace", "setnx")
INCR_MODES: Final = ("incr", "incrfloat")
MAX_FIELDS_PER_WRITE: Final = DEFAULT_LIMITS.max_fields_per_write  # the default
Value = bytes | bytearray | memoryview | str | ValData


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Where one object lives: its partition keys and its id as spelled in keys.

    ``script_keys`` are the write script's KEYS[1..5] for it (``lua/write.lua``), spelled
    once; the sixth, the runtime switch, depends on the client (:func:`build_write`).
    """

    keys: PartitionKeys
    segment: str
    script_keys: tuple[str, str, str, str, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        p, seg = self.keys, self.segment
        spelled = (p.obj(seg), p.meta(seg), p.outbox, p.shadow(seg), p.capture_flag)
        object.__setattr__(self, "script_keys", spelled)

    @classmethod
    def of(cls, cls_id: object, partition_id: object, object_id: object) -> ObjectRef:
        # the same ids name the same object: refs are kept (ids of types that are equal
        # across types, True and 1, are told apart by their types)
        try:
            kinds = (type(partition_id).__name__, type(object_id).__name__)
            return _ref(cls_id, partition_id, object_id, kinds)
        except TypeError:  # not hashable: an invalid id, which the uncached path names
            return cls(PartitionKeys.of(cls_id, partition_id), object_segment(object_id))

    @classmethod
    def of_parsed(cls, keys: PartitionKeys, segment: str) -> ObjectRef:
        """The ref of an object whose partition and id spelling were parsed from a key."""
        return _parsed_ref(keys, segment)

    @property
    def obj(self) -> str:
        return self.script_keys[0]

    @property
    def meta(self) -> str:
        return self.script_keys[1]

    @property
    def shadow(self) -> str:
        return self.script_keys[3]

    def describe(self) -> str:
        return f"object {self.keys.cls_id}/{self.keys.partition_id}/{self.segment}"


@functools.lru_cache(maxsize=4096)
def _ref(cls_id: object, partition_id: object, object_id: object, _kinds: object) -> ObjectRef:
    return ObjectRef(PartitionKeys.of(cls_id, partition_id), object_segment(object_id))


@functools.lru_cache(maxsize=4096)
def _parsed_ref(keys: PartitionKeys, segment: str) -> ObjectRef:
    return ObjectRef(keys, segment)


@dataclass(slots=True)  # not frozen: built per write, where frozen init costs
class ScriptCall:
    """One call of the write script: its keys and arguments, and what the reply means."""

    target: ObjectRef
    mode: str
    keys: list[str]
    args: list[bytes | str | int]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write did: the object's version after it and the outbox entry it queued.

    ``entry_id`` is ``None`` when no trigger matched (nothing was queued); ``events`` is the
    number of matched events in the entry.  ``existed`` says whether the object existed
    before the write: ``False`` when this write created it (``create``, or an ``upsert`` /
    ``replace`` of a missing object) and, for ``delete``, when there was nothing to delete.
    """

    version: int
    entry_id: str | None
    events: int
    existed: bool = True
    created: int = 0
    deleted: int = 0
    value: bytes | None = None  # the new value of an increment


def _encode_value(key: object, value: object) -> tuple[bytes, int]:
    if isinstance(value, ValData):
        return value.data, int(value.type)
    if isinstance(value, bytes):
        return value, 0
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value), 0
    if isinstance(value, str):
        return check_utf8(f"value of field {key!r}", value, InvalidValueError).encode(), 0
    raise InvalidValueError(
        f"value of field {key!r} must be bytes, str or ValData, got {type(value).__name__}"
    )


def encode_entries(
    entries: Mapping[FieldKey, Value] | None, limits: Limits = DEFAULT_LIMITS
) -> list[bytes | str]:
    """Flatten ``{key: value}`` into ``name, value, type`` triples, validating each (and
    the write against ``limits``)."""
    if entries is None:
        return []
    if type(entries) is not dict and not isinstance(entries, Mapping):
        raise InvalidValueError(
            f"entries must be a mapping of field key to value, got {type(entries).__name__}"
        )
    if len(entries) > limits.max_fields_per_write:
        what = f"a write of {len(entries)} fields"
        raise InvalidValueError(limits.exceeded(what, "max_fields_per_write"))
    flat: list[bytes | str] = []
    total = 0
    for key, value in entries.items():
        if type(value) is bytes:  # the common case, as _encode_value spells it
            data, vtype = value, "0"
            name = _name(key) if type(key) in (int, str) else field_name(key)
        else:
            data, code = _encode_value(key, value)
            name, vtype = field_name(key), str(code)
        if len(data) > limits.max_value_bytes:
            what = f"the value of field {name} is {len(data)} bytes"
            raise InvalidValueError(limits.exceeded(what, "max_value_bytes"))
        total += len(name) + len(data)
        flat += [name, data, vtype]
    if total > limits.max_entry_bytes:  # what its outbox entry may copy (names and values)
        what = f"a write of {total} bytes of field names and values"
        raise InvalidValueError(limits.exceeded(what, "max_entry_bytes"))
    return flat


@functools.lru_cache(maxsize=4096)
def _name(key: FieldKey) -> str:
    return field_name(key)  # only int and str keys: equal ones spell the same name


def _field_names(keys: Iterable[FieldKey]) -> list[str]:
    if isinstance(keys, (str, bytes, int)):
        raise InvalidIdError(f"field keys must be a list of keys, got {keys!r}")
    return [field_name(k) for k in keys]


def _items(
    mode: str,
    entries: Mapping[FieldKey, Value] | None,
    delete_keys: Iterable[FieldKey] | None,
    func: tuple[str, str, bytes | None] | None,
    limits: Limits,
) -> tuple[Sequence[bytes | str], int]:
    """The field items of a write and how many there are (``write.lua``: ARGV[6])."""
    if mode in SET_MODES:
        items = encode_entries(entries, limits)
        return items, len(items) // 3
    if mode == "func":
        fn_id, code, output = func or ("", "", None)
        validate_id("fn_id", fn_id)
        if output is not None and len(output) > limits.max_value_bytes:
            what = f"the output of function {fn_id} is {len(output)} bytes"
            raise InvalidValueError(limits.exceeded(what, "max_value_bytes"))
        if output is None:
            return [fn_id, b"", code + "0"], 1
        return [fn_id, output, code], 1
    if mode in INCR_MODES:
        ((key, amount),) = (entries or {}).items()
        return [field_name(key), str(amount), "0"], 1
    if mode == "delete_fields":
        names = _field_names(delete_keys or ())
        if len(names) > limits.max_fields_per_write:
            what = f"a write of {len(names)} fields"
            raise InvalidValueError(limits.exceeded(what, "max_fields_per_write"))
        return names, len(names)
    return [], 0


def _trigger_args(event: object, expect: bytes | None, limits: Limits) -> list[bytes | str | int]:
    """The new trigger configuration and its index, checked against ``expect`` if given."""
    parsed = coerce_event(event, limits)
    index = build_index(parsed)
    serialized = parsed.SerializeToString(deterministic=True) if parsed is not None else b""
    args: list[bytes | str | int] = ["1" if expect is None else "2", serialized, len(index)]
    for name, blob in index.items():
        args += [name, blob]
    return args if expect is None else [*args, expect]


def build_write(
    target: ObjectRef,
    mode: str,
    *,
    entries: Mapping[FieldKey, Value] | None = None,
    delete_keys: Iterable[FieldKey] | None = None,
    event: object = None,
    replace_triggers: bool = False,
    func: tuple[str, str, bytes | None] | None = None,
    depth: int = 0,
    traceparent: str | None = None,
    events_enabled: bool = True,
    expect_triggers: bytes | None = None,
    limits: Limits = DEFAULT_LIMITS,
    switch: str = SWITCH_KEY,
) -> ScriptCall:
    """Validate a write and spell it as one call of ``write.lua`` (see its header).

    With ``expect_triggers`` (the serialized configuration read before), the configuration
    is replaced only if it is still that one: a compare-and-set, see :func:`edited_triggers`.
    ``switch`` is the copy of the runtime switch the write reads (:mod:`..protocol.switch`).
    """
    items, count = _items(mode, entries, delete_keys, func, limits)
    triggers = _trigger_args(event, expect_triggers, limits) if replace_triggers else ["0"]
    args: list[bytes | str | int] = [
        mode,
        target.segment,
        depth,
        traceparent or "",
        "1" if events_enabled else "0",
        count,
        *items,
        *triggers,
    ]
    return ScriptCall(target, mode, [*target.script_keys, switch], args)


def parse_reply_entry(reply: Any) -> bool:
    """Whether the write script queued an outbox entry."""
    return bool(reply[2])


class TriggersChanged(Exception):  # a signal to read again, never raised to users
    """A compare-and-set of the trigger configuration found another one: read it again."""


#: the length of the quick path's reply (write.lua: "Returns"); the general path's is 8
QUICK_REPLY_LEN = 5


def parse_write(call: ScriptCall, reply: Any) -> WriteResult:
    """Turn the script's reply into a result, or raise the error it stands for."""
    if len(reply) == QUICK_REPLY_LEN:  # the quick path's: its last three left out (0, "", 1)
        entry_id = reply[2]
        return WriteResult(
            int(reply[1]), as_text(entry_id) or None, int(reply[3]), True, int(reply[4])
        )
    status, version, entry_id, events = reply[0], int(reply[1]), reply[2], int(reply[3])
    created, deleted, value, existed = int(reply[4]), int(reply[5]), reply[6], reply[7] == 1
    if status == 1:
        raise ObjectExistsError(f"{call.target.describe()} already exists; use update or upsert")
    if status == 2:
        if call.mode == "delete":
            return WriteResult(0, None, 0, existed=False)
        raise ObjectNotFoundError(f"{call.target.describe()} does not exist; create it first")
    if status == 3:
        raise TriggersChanged
    if isinstance(value, str):
        value = value.encode()
    return WriteResult(
        version, as_text(entry_id) or None, events, existed, created, deleted, value or None
    )


#: how often a trigger edit reads the configuration again after losing a race for it
EDIT_ATTEMPTS: Final = 100


def edited_triggers(
    target: ObjectRef, replies: Sequence[Any], edit: TargetEdit
) -> tuple[ObjectEvent | None, bytes]:
    """From the replies of TYPE obj, TYPE meta, HGET meta ev: the configuration with
    ``edit`` applied (``None`` when it changes nothing) and the serialized configuration it
    was made from, which the write must find unchanged (``build_write(expect_triggers=)``)."""
    obj_type, meta_type, serialized = replies
    check_types(target, obj_type, meta_type, serialized)
    if as_text(obj_type) == as_text(meta_type) == "none":
        raise ObjectNotFoundError(f"{target.describe()} does not exist")
    event = decode_event(target, serialized)
    return (event if edit.apply(event) else None), serialized or b""


def edit_conflict(target: ObjectRef) -> OprcEventsError:
    return OprcEventsError(
        f"the triggers of {target.describe()} changed {EDIT_ATTEMPTS} times while this edit "
        "was being applied; try again"
    )
