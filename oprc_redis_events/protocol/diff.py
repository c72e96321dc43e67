"""The field-level changes of a write, by the write path's rules (``lua/write.lua``), for
whoever predicts them in Python (``explain``): a field that appears is CREATE; one whose
bytes *or value type* change is UPDATE; one that disappears is DELETE; an unchanged value
gives nothing.  A test holds this and the script to the same answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .codes import EventKind, by_code
from .keys import FieldKey

__all__ = ["Change", "Typed", "field_changes"]

#: a stored or written value and its ValType number (0: plain bytes)
Typed = tuple[bytes, int]

CREATE, UPDATE, DELETE = by_code("c"), by_code("u"), by_code("d")


@dataclass(frozen=True, slots=True)
class Change:
    kind: EventKind
    key: FieldKey
    old: bytes | None
    new: bytes | None


def field_changes(
    current: Mapping[FieldKey, Typed],
    sets: Mapping[FieldKey, Typed],
    deletes: Iterable[FieldKey] = (),
    *,
    delete_all: bool = False,
) -> list[Change]:
    """The changes of writing ``sets`` and deleting ``deletes`` (every field with
    ``delete_all``) on an object holding ``current``, in the script's order."""
    out: list[Change] = []
    for key, typed in sets.items():
        old = current.get(key)
        if old is None:
            out.append(Change(CREATE, key, None, typed[0]))
        elif old != typed:
            out.append(Change(UPDATE, key, old[0], typed[0]))
    gone = list(current) if delete_all else [k for k in deletes if k in current]
    out += [Change(DELETE, k, current[k][0], None) for k in gone if k not in sets]
    return out
