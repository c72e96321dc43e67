"""The event kinds, in one table: every name each layer uses for the same event.

=======  ======  ===============  =============  ===========  ========================
code     number  name             slot           key          word
=======  ======  ===============  =============  ===========  ========================
``c``    3       DATA_CREATE      on_create      field        create
``u``    4       DATA_UPDATE      on_update      field        update
``d``    5       DATA_DELETE      on_delete      field        delete
``fc``   1       FUNC_COMPLETE    on_complete    function id  complete
``fe``   2       FUNC_ERROR       on_error       function id  error
=======  ======  ===============  =============  ===========  ========================

*code*: the trigger index slot in the meta hash (``t:<code>:<key>``) and what the Lua
scripts call a change (the loader writes the code -> number table into
``lua/lib/events.lua``); *number*: ``EventType`` of WIRE.md, in outbox entries and
payloads; *slot*: the attribute of ``DataTrigger`` / ``FuncTrigger`` and the CLI's EVENT
word.  Adding an event kind is a row here plus the code that behaves differently.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DATA_EVENTS",
    "EVENTS",
    "FUNC_EVENTS",
    "FUNC_NUMBERS",
    "EventKind",
    "by_code",
    "by_number",
    "by_slot",
    "lua_table",
]


@dataclass(frozen=True, slots=True)
class EventKind:
    code: str
    number: int
    name: str
    slot: str
    data: bool  # a field event (key: a field) or a function event (key: a function id)
    word: str

    @property
    def key_kind(self) -> str:
        return "field key" if self.data else "function id"


EVENTS: tuple[EventKind, ...] = (
    EventKind("c", 3, "DATA_CREATE", "on_create", True, "create"),
    EventKind("u", 4, "DATA_UPDATE", "on_update", True, "update"),
    EventKind("d", 5, "DATA_DELETE", "on_delete", True, "delete"),
    EventKind("fc", 1, "FUNC_COMPLETE", "on_complete", False, "complete"),
    EventKind("fe", 2, "FUNC_ERROR", "on_error", False, "error"),
)
DATA_EVENTS = tuple(e for e in EVENTS if e.data)
FUNC_EVENTS = tuple(e for e in EVENTS if not e.data)
FUNC_NUMBERS = frozenset(e.number for e in FUNC_EVENTS)

_BY_CODE = {e.code: e for e in EVENTS}
_BY_NUMBER = {e.number: e for e in EVENTS}
_BY_SLOT = {e.slot: e for e in EVENTS}


def by_code(code: str) -> EventKind:
    return _BY_CODE[code]


def by_number(number: int) -> EventKind | None:
    """The kind of ``EventType`` ``number``; ``None`` for a number that is no event."""
    return _BY_NUMBER.get(number)


def by_slot(slot: str) -> EventKind | None:
    return _BY_SLOT.get(slot)


def lua_table() -> str:
    """The code -> number table as a Lua table constructor (for ``lib/events.lua``)."""
    return "{" + ", ".join(f'{e.code} = "{e.number}"' for e in EVENTS) + "}"
