"""Key layout in Redis and validation of every id that reaches a key.

Every key of one (class, partition) pair carries the same Redis Cluster hash tag,
so an object, its partition's outbox stream and its bookkeeping live in one slot
and one Lua call can touch them all::

    oprc:{orders:0}:obj:1001      hash    the object's fields (field name = field key)
    oprc:{orders:0}:meta:1001     hash    version, trigger configuration and trigger index
    oprc:{orders:0}:outbox        stream  events waiting for the worker
    oprc:{orders:0}:dlq           stream  events the worker could not handle, with the reason
    oprc:{orders:0}:lease:<group> string  the worker of <group> that owns the partition (expires)
    oprc:{orders:0}:shadow:1001   hash    keyspace capture: the object as last reported
    oprc:{orders:0}:capture       string  set while keyspace capture serves the partition
    oprc:partitions               set     "cls:pid" of every partition written to (a discovery hint)
    oprc:workers:<group>          zset    live workers of <group>, scored by last heartbeat (ms)

and one Pub/Sub channel: ``oprc:new-outbox``, on which the write script publishes the name
of an outbox it has just created (a hint that wakes the workers; discovery finds it anyway).

Numeric and string ids share one namespace, told apart by their spelling: an object
id (or field key) written as a canonical decimal number is the numeric id (u64 for
objects, u32 for fields); any other spelling is a string id.  A *string* id made of
digits only is refused: a canonical number would be ambiguous (the error says to pass
the integer), one with a leading zero (``"042"``) or beyond the range would look like
a number that it is not.

Ids may not contain characters that are special to Zenoh key expressions or to this
layout (``/ * $ # ? { }``), whitespace or control characters, and may not be empty; they
are rejected, never escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ..errors import InvalidIdError

__all__ = [
    "MAX_PARTITION",
    "MAX_U32",
    "MAX_U64",
    "NEW_OUTBOX_CHANNEL",
    "PARTITIONS_KEY",
    "PREFIX",
    "FieldKey",
    "ObjectId",
    "PartitionKeys",
    "as_text",
    "check_utf8",
    "field_name",
    "object_segment",
    "parse_field_name",
    "parse_object_key",
    "parse_object_segment",
    "validate_id",
    "workers_key",
]

PREFIX: Final = "oprc"
PARTITIONS_KEY: Final = f"{PREFIX}:partitions"
#: Pub/Sub channel: the outbox key of a partition's first entry (spelled out in write.lua)
NEW_OUTBOX_CHANNEL: Final = f"{PREFIX}:new-outbox"


def workers_key(group: str) -> str:
    """The heartbeat set of the workers of consumer group ``group``."""
    return f"{PREFIX}:workers:{group}"


MAX_U32: Final = 2**32 - 1
MAX_U64: Final = 2**64 - 1
MAX_PARTITION: Final = MAX_U32
MAX_ID_LENGTH: Final = 256

ObjectId = int | str
FieldKey = int | str

_FORBIDDEN = re.compile(r"[/*$#?{}\s\x00-\x1f\x7f]")  # and control characters
_CANONICAL_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_DIGITS = re.compile(r"[0-9]+")


def as_text(value: bytes | str) -> str:
    """A key, stream id or member as redis-py returns it (bytes, or str when decoding)."""
    return value.decode() if isinstance(value, bytes) else value


def is_utf8(text: str) -> bool:
    """Whether ``text`` has a UTF-8 encoding (a str with lone surrogates, such as
    ``"a\\udcff"``, has none)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_utf8(kind: str, text: str, error: type[Exception] = InvalidIdError) -> str:
    """``text``, or ``error`` naming ``kind`` when it cannot be encoded as UTF-8."""
    if not is_utf8(text):
        raise error(
            f"{kind} {text[:40]!r} is not valid UTF-8 text (it holds a lone surrogate); "
            "pass text that encodes as UTF-8"
        )
    return text


def validate_id(kind: str, value: object) -> str:
    """Return ``value`` when it can be used as a ``kind`` id, else raise :class:`InvalidIdError`."""
    if not isinstance(value, str):
        raise InvalidIdError(f"{kind} must be a string, got {type(value).__name__} {value!r}")
    check_utf8(kind, value)
    if not value:
        raise InvalidIdError(f"{kind} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdError(f"{kind} {value[:40]!r}... is longer than {MAX_ID_LENGTH} characters")
    bad = _FORBIDDEN.search(value)
    if bad:
        raise InvalidIdError(
            f"{kind} {value!r} contains {bad.group()!r}, which is special to Zenoh key "
            "expressions or to the key layout (forbidden: / * $ # ? { }, whitespace and "
            "control characters)"
        )
    return value


def validate_partition(value: object) -> int:
    """Return a partition id (u32) or raise :class:`InvalidIdError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidIdError(f"partition_id must be an int, got {type(value).__name__} {value!r}")
    if not 0 <= value <= MAX_PARTITION:
        raise InvalidIdError(f"partition_id {value} is outside 0..{MAX_PARTITION}")
    return value


def _segment(kind: str, value: object, limit: int) -> str:
    if isinstance(value, bool):
        raise InvalidIdError(f"{kind} must be an int or a string, got bool {value!r}")
    if isinstance(value, int):
        if not 0 <= value <= limit:
            raise InvalidIdError(f"{kind} {value} is outside 0..{limit}")
        return str(value)
    if isinstance(value, str):
        validate_id(kind, value)
        if _DIGITS.fullmatch(value):
            raise InvalidIdError(_digits_message(kind, value, limit))
        return value
    raise InvalidIdError(f"{kind} must be an int or a string, got {type(value).__name__} {value!r}")


def _digits_message(kind: str, value: str, limit: int) -> str:
    if not _CANONICAL_DECIMAL.fullmatch(value):
        return (
            f"{kind} {value!r} is all digits but not a canonical number (it has a leading "
            f"zero); use {int(value)} for the numeric {kind}, or a name with a non-digit"
        )
    if int(value) > limit:
        return (
            f"{kind} {value!r} is all digits but above {limit}, the largest numeric {kind}; "
            "use a name with a non-digit"
        )
    return (
        f"{kind} {value!r} is a decimal number written as a string; pass the int "
        f"{value} for a numeric id (string ids must not be all digits)"
    )


def object_segment(object_id: object) -> str:
    """Spell an object id (u64 or string) as it appears in keys and stream entries."""
    return _segment("object_id", object_id, MAX_U64)


def field_name(key: object) -> str:
    """Spell a field key (u32 or string) as the hash field name."""
    return _segment("field key", key, MAX_U32)


def _parse(text: str, limit: int) -> int | str:
    if _CANONICAL_DECIMAL.fullmatch(text) and int(text) <= limit:
        return int(text)
    return text


def parse_object_segment(text: str) -> ObjectId:
    """Inverse of :func:`object_segment`, lenient so that anything stored can be read: a
    spelling that :func:`object_segment` refuses (``"007"``) comes back as that string."""
    return _parse(text, MAX_U64)


def parse_field_name(text: str) -> FieldKey:
    """Inverse of :func:`field_name`: a canonical number gives an int key; lenient like
    :func:`parse_object_segment` (``"042"`` comes back as a string, which writes refuse)."""
    return _parse(text, MAX_U32)


@dataclass(frozen=True, slots=True, order=True)
class PartitionKeys:
    """The keys of one (class, partition) pair; every one carries the same hash tag."""

    cls_id: str
    partition_id: int

    @classmethod
    def of(cls, cls_id: object, partition_id: object) -> PartitionKeys:
        return cls(validate_id("cls_id", cls_id), validate_partition(partition_id))

    @property
    def tag(self) -> str:
        return f"{{{self.cls_id}:{self.partition_id}}}"

    @property
    def outbox(self) -> str:
        return f"{PREFIX}:{self.tag}:outbox"

    @property
    def dead_letters(self) -> str:
        return f"{PREFIX}:{self.tag}:dlq"

    @property
    def member(self) -> str:
        """This partition's member name in :data:`PARTITIONS_KEY`."""
        return f"{self.cls_id}:{self.partition_id}"

    def lease(self, group: str) -> str:
        return f"{PREFIX}:{self.tag}:lease:{group}"

    @property
    def capture_flag(self) -> str:
        return f"{PREFIX}:{self.tag}:capture"

    def shadow(self, segment: str) -> str:
        return f"{PREFIX}:{self.tag}:shadow:{segment}"

    def obj(self, segment: str) -> str:
        return f"{PREFIX}:{self.tag}:obj:{segment}"

    def meta(self, segment: str) -> str:
        return f"{PREFIX}:{self.tag}:meta:{segment}"

    @classmethod
    def from_member(cls, member: str) -> PartitionKeys:
        """The partition named ``cls:pid`` (as in the hash tag and :data:`PARTITIONS_KEY`)."""
        cls_id, _, pid = member.rpartition(":")
        if not _CANONICAL_DECIMAL.fullmatch(pid) or int(pid) > MAX_PARTITION:
            raise InvalidIdError(
                f"partition {member!r} is not <cls>:<pid>: {pid!r} is not a number "
                f"0..{MAX_PARTITION}"
            )
        return cls.of(cls_id, int(pid))

    @staticmethod
    def object_segment_of(key: str) -> str | None:
        """The object id spelling of an object key (``...:obj:<oid>``), else ``None``."""
        end = key.find("}")
        rest = key[end + 1 :] if end > 0 else ""
        return rest[len(":obj:") :] if rest.startswith(":obj:") else None

    @classmethod
    def from_key(cls, key: str) -> PartitionKeys:
        """The partition of any key of the layout (``oprc:{cls:pid}:...``)."""
        start, end = key.find("{"), key.find("}")
        if not key.startswith(PREFIX + ":{") or end < start:
            raise InvalidIdError(f"{key!r} is not a key of the {PREFIX} layout")
        return cls.from_member(key[start + 1 : end])


#: the keys that belong to one object (see the layout above)
OBJECT_KEY_KINDS: Final = ("obj", "meta", "shadow")


def _key_text(name: object) -> tuple[str, bool] | None:
    """A key starting with ``oprc:{`` as text, and whether its bytes were valid UTF-8."""
    if isinstance(name, str):
        return (name, is_utf8(name)) if name.startswith(PREFIX + ":{") else None
    if not isinstance(name, (bytes, bytearray, memoryview)):
        return None
    raw = bytes(name)
    if not raw.startswith(b"oprc:{"):
        return None
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape"), False


def parse_object_key(name: object) -> tuple[str, PartitionKeys, str] | None:
    """``(kind, partition, object id spelling)`` when ``name`` is a key of one object
    (``oprc:{cls:pid}:<obj|meta|shadow>:<oid>``), ``None`` for any other key.

    A key of that shape that is not valid UTF-8, or names an invalid class, partition or
    object id, raises :class:`InvalidIdError` naming it, rather than being taken for
    some other key.
    """
    found = _key_text(name)
    if found is None:
        return None
    key, utf8 = found
    end = key.find("}")
    head, sep, segment = key[end + 1 :].partition(":")[2].partition(":")
    if end < 0 or not key[end + 1 :].startswith(":") or not sep or head not in OBJECT_KEY_KINDS:
        return None
    if not utf8:
        raise InvalidIdError(f"key {name!r} has the shape of an object key but is not valid UTF-8")
    try:
        partition = PartitionKeys.from_member(key[len(PREFIX) + 2 : end])
        object_segment(parse_object_segment(segment))
    except InvalidIdError as err:
        raise InvalidIdError(
            f"key {name!r} has the shape of an object key (oprc:{{cls:pid}}:{head}:<oid>) but {err}"
        ) from None
    return head, partition, segment
