"""The runtime switch: event production turned off and on for every writer at once
(``oprc-redis-events events off|on|status [--cls C]``), as pure data.

The switch is a Redis hash that the write script (and keyspace capture's script) reads in
the same call as the write, so a write either sees it or not, never half of it::

    oprc:switch            hash   on one Redis: field "*" (every class) or a class id -> "off"
    oprc:switch:{<tag>}    hash   on Redis Cluster: the same hash once per hash slot

A script on Redis Cluster may only touch keys of its own slot, so the cluster form holds
one copy per slot (16,384), each named with a hash tag that falls in that slot
(:func:`slot_tag`), and a write reads the copy of its partition's slot.  Every slot has its
copy from the moment ``events off`` returns, so a partition created later is covered, and a
slot moved to another node (resharding, failover) takes its copy with it.  The copies are
absent while events are on: the script asks ``EXISTS`` on its capture flag and its copy in
one call, so the common path costs no extra command.
"""

from __future__ import annotations

import binascii
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

from .keys import PREFIX, PartitionKeys, as_text

__all__ = [
    "ALL_CLASSES",
    "OFF",
    "SLOTS",
    "SWITCH_KEY",
    "SwitchState",
    "generate_slot_tags",
    "slot_tag",
    "switch_key",
    "switch_keys",
    "tag_slot",
]

SWITCH_KEY: Final = f"{PREFIX}:switch"
#: the field that turns events off for every class (a class id cannot contain "*")
ALL_CLASSES: Final = "*"
OFF: Final = "off"
SLOTS: Final = 16384
_TAG_WIDTH: Final = 3
_ALPHABET: Final = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"


def tag_slot(tag: str) -> int:
    """The Redis Cluster hash slot of a hash tag's content (CRC16/XMODEM mod 16384)."""
    return binascii.crc_hqx(tag.encode(), 0) % SLOTS


def generate_slot_tags() -> str:
    """The first 3-character tag (in the alphabet's order) of every slot, concatenated in
    slot order: what ``slot_tags.txt`` holds (a test compares them)."""
    crc = binascii.crc_hqx
    tags: dict[int, bytes] = {}
    for a in _ALPHABET:
        ca = crc(bytes([a]), 0)
        for b in _ALPHABET:
            cb = crc(bytes([b]), ca)
            for c in _ALPHABET:
                tags.setdefault(crc(bytes([c]), cb) % SLOTS, bytes([a, b, c]))
    return b"".join(tags[slot] for slot in range(SLOTS)).decode()


@cache
def _tags() -> str:
    text = resources.files(__package__).joinpath("slot_tags.txt").read_text("ascii").strip()
    if len(text) != SLOTS * _TAG_WIDTH:
        raise RuntimeError("oprc_redis_events/protocol/slot_tags.txt is damaged")
    return text


def slot_tag(slot: int) -> str:
    """A hash tag whose keys fall in ``slot``."""
    return _tags()[slot * _TAG_WIDTH : (slot + 1) * _TAG_WIDTH]


def switch_key(partition: PartitionKeys, *, cluster: bool) -> str:
    """The copy of the switch that a write to ``partition`` reads: the one key on one
    Redis, its slot's copy on Redis Cluster."""
    return _slot_key(tag_slot(partition.tag[1:-1])) if cluster else SWITCH_KEY


@cache
def _slot_key(slot: int) -> str:
    return f"{SWITCH_KEY}:{{{slot_tag(slot)}}}"


def switch_keys(*, cluster: bool) -> list[str]:
    """Every copy of the switch: one key on one Redis, one per slot on Redis Cluster."""
    return [_slot_key(slot) for slot in range(SLOTS)] if cluster else [SWITCH_KEY]


@dataclass(frozen=True)
class SwitchState:
    """What the copies of the switch say: the classes turned off (``"*"``: every class)
    according to most copies, and on Redis Cluster how many copies say otherwise."""

    off: frozenset[str]
    copies: int = 1
    disagreeing: int = 0

    @classmethod
    def read(cls, copies: Iterable[Mapping[bytes | str, bytes | str]]) -> SwitchState:
        states = Counter(
            frozenset(as_text(f) for f, v in c.items() if as_text(v) == OFF) for c in copies
        )
        if not states:
            return cls(frozenset(), 0)
        most, count = states.most_common(1)[0]
        return cls(most, states.total(), states.total() - count)

    def is_off(self, cls_id: str | None = None) -> bool:
        """Whether events are off for ``cls_id`` (``None``: for every class)."""
        return ALL_CLASSES in self.off or (cls_id is not None and cls_id in self.off)
