"""Reading objects without I/O: an :class:`ObjectRecord` from an object's two hashes.

What Redis holds may have been written by other tools: anything this package cannot read
(a key of another type, a version that is not a number, an undecodable trigger
configuration or value type) raises :class:`CorruptedStateError` naming the key and what
is wrong, never a foreign error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError

from ..errors import CorruptedStateError
from ..pb.oprc_data_pb2 import ObjData, ObjectEvent, ObjMeta, ValType
from ..protocol.keys import FieldKey, ObjectId, as_text, parse_field_name, parse_object_segment

if TYPE_CHECKING:
    from .core import ObjectRef

__all__ = ["ObjectRecord", "check_types", "decode_event", "parse_record", "parse_version"]

#: a version as the write script keeps it (lua/lib/events.lua: read_version)
_VERSION = re.compile(rb"0|[1-9][0-9]{0,14}")
_VALUE_TYPE = re.compile(rb"0|[1-9][0-9]{0,8}")


@dataclass(slots=True)
class ObjectRecord:
    """An object as stored: its fields, trigger configuration and version."""

    cls_id: str
    partition_id: int
    object_id: ObjectId
    version: int
    entries: dict[FieldKey, bytes] = field(default_factory=dict)
    types: dict[FieldKey, int] = field(default_factory=dict)
    event: ObjectEvent | None = None

    @property
    def metadata(self) -> ObjMeta:
        """The platform's ``ObjMeta`` of this object."""
        meta = ObjMeta(cls_id=self.cls_id, partition_id=self.partition_id)
        if isinstance(self.object_id, int):
            meta.object_id = self.object_id
        else:
            meta.object_id_str = self.object_id
        return meta

    def to_obj_data(self) -> ObjData:
        """The platform's ``ObjData`` for this object (numeric keys in ``entries``)."""
        data = ObjData(metadata=self.metadata)
        for key, value in self.entries.items():
            target = data.entries[key] if isinstance(key, int) else data.entries_str[key]
            target.data = value
            target.type = self.types.get(key, ValType.VAL_TYPE_BYTE)  # type: ignore[assignment]
        if self.event is not None:
            data.event.CopyFrom(self.event)
        return data


def _shown(value: bytes) -> str:
    return repr(value[:40]) + ("..." if len(value) > 40 else "")


def check_types(ref: ObjectRef, obj_type: Any, meta_type: Any, *replies: Any) -> None:
    """Raise :class:`CorruptedStateError` unless both keys are hashes (or absent), then the
    first error among ``replies`` (of a pipeline run without raising, after the TYPEs)."""
    for key, found in ((ref.obj, obj_type), (ref.meta, meta_type)):
        kind = as_text(found)
        if kind not in ("hash", "none"):
            raise CorruptedStateError(f"{key} is a {kind}, not a hash: fix or delete it")
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def parse_version(ref: ObjectRef, value: bytes | None) -> int:
    """The version ``v`` of the meta hash (0 when absent)."""
    if value is None:
        return 0
    if not _VERSION.fullmatch(value):
        raise CorruptedStateError(
            f"field v (the version) of {ref.meta} is {_shown(value)}, not a non-negative "
            f"integer: set it (HSET {ref.meta} v <version>) or delete the object"
        )
    return int(value)


def decode_event(ref: ObjectRef, serialized: bytes | None) -> ObjectEvent:
    """The trigger configuration kept in ``ev`` (empty when there is none)."""
    event = ObjectEvent()
    if serialized:
        try:
            event.ParseFromString(serialized)
        except DecodeError as err:
            raise CorruptedStateError(
                f"field ev (the triggers) of {ref.meta} is not a serialized ObjectEvent "
                f"({err}): set the triggers again (set_triggers) or delete the field"
            ) from err
    return event


def _field(key: str, name: bytes) -> FieldKey:
    try:
        return parse_field_name(name.decode("utf-8"))
    except UnicodeDecodeError:
        raise CorruptedStateError(
            f"{key} has a field {_shown(name)} whose name is not UTF-8: rename or delete it"
        ) from None


def _value_type(ref: ObjectRef, name: bytes, value: bytes) -> int:
    if not _VALUE_TYPE.fullmatch(value):
        raise CorruptedStateError(
            f"field {name.decode(errors='replace')} (a value type) of {ref.meta} is "
            f"{_shown(value)}, not a ValType number: fix or delete it"
        )
    return int(value)


def parse_record(
    ref: ObjectRef, data: Mapping[bytes, bytes], meta: Mapping[bytes, bytes]
) -> ObjectRecord | None:
    """An :class:`ObjectRecord` from the two hashes, ``None`` when neither exists."""
    if not data and not meta:
        return None
    record = ObjectRecord(
        ref.keys.cls_id,
        ref.keys.partition_id,
        parse_object_segment(ref.segment),
        parse_version(ref, meta.get(b"v")),
    )
    for name, value in data.items():
        record.entries[_field(ref.obj, name)] = value
    for name, value in meta.items():
        if name.startswith(b"y:"):
            record.types[_field(ref.meta, name[2:])] = _value_type(ref, name, value)
    record.event = decode_event(ref, meta.get(b"ev"))
    return record
