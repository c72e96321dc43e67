"""Trigger targets as the worker and the write path hold them: compact msgpack lists.

An index value of the meta hash (``t:<code>:<key>``, see :mod:`.triggers`) and the ``t<i>``
field of an outbox entry are a msgpack list of :class:`Target`, decoded without protobuf.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

__all__ = [
    "Target",
    "UnreadableTarget",
    "decode_targets",
    "encode_targets",
    "only_targets",
]


class Target(msgspec.Struct, array_like=True, frozen=True):
    """A trigger target as the worker needs it: compact, decoded without protobuf."""

    cls_id: str
    partition_id: int
    object_id: int | None
    object_id_str: str | None
    fn_id: str
    options: dict[str, str]

    @property
    def stateful(self) -> bool:
        return self.object_id is not None or self.object_id_str is not None

    @property
    def object_segment(self) -> str:
        return str(self.object_id) if self.object_id_str is None else self.object_id_str


class UnreadableTarget(Target, frozen=True, array_like=True):
    """A target of an index value or outbox entry that does not decode (not UTF-8, wrong
    shape) while the others do: :func:`check_target` refuses it with ``reason``."""

    reason: str = ""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[Target])
_raw_items = msgspec.msgpack.Decoder(list[msgspec.Raw])
_one = msgspec.msgpack.Decoder(Target)


def encode_targets(targets: list[Target]) -> bytes:
    return _encoder.encode(targets)


def decode_targets(blob: bytes) -> list[Target]:
    """Decode an index value; raises :class:`msgspec.DecodeError` when it is not a list.

    A list with some items that do not decode keeps its positions: each such item is an
    :class:`UnreadableTarget` (refused by :func:`check_target`), so the others still go."""
    try:
        return _decoder.decode(blob)
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec: text not UTF-8
        return [_decode_one(i, raw) for i, raw in enumerate(_raw_items.decode(blob))]


def _decode_one(index: int, raw: msgspec.Raw) -> Target:
    try:
        return _one.decode(raw)
    except UnicodeDecodeError:
        reason = f"target {index} holds text that is not UTF-8"
    except msgspec.DecodeError as err:
        reason = f"target {index} cannot be decoded: {err}"
    return UnreadableTarget("", 0, None, None, "", {}, reason=reason)


def only_targets(blob: bytes, keep: Iterable[int]) -> bytes:
    """``blob`` (encoded targets) with only the items at ``keep``, copied byte for byte."""
    items = _raw_items.decode(blob)
    return _encoder.encode([items[i] for i in keep])
