"""Coalescing in the worker (``oprc.coalesce_ms``, :mod:`~oprc_redis_events.protocol.coalescing`):
which triggers coalesce, their windows, where a CREATE or DELETE ends them, and the one
trigger a window sends.  Pure; the open windows live in :class:`.batches.Batches` beside
the open batches (held entries, windows measured by write time), and
:class:`.batch_handling.BatchHandling` sends them.

A window gathers the UPDATE triggers of one target for one (object, field) of one
partition; it closes ``coalesce_ms`` after its first update's write (an update written
later opens the next one), when the worker's clock says so, or when a CREATE or DELETE
event of its (object, field) is read: then it goes out before that event's own triggers.
Windows of one target go out in the order of their first update (closing one closes the
target's windows opened before it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..protocol.coalescing import COALESCE_MS_OPTION
from ..protocol.codes import by_code
from ..protocol.conditions import includes_old
from ..protocol.encode import Delivery, Dispatch, build_dispatch, invocation_id
from ..protocol.outbox import OutboxEntry, OutboxEvent
from .dispatch import Plan

__all__ = ["UPDATE", "Window", "coalesced", "coalesced_dispatch", "cuts", "window_of"]

#: the ``EventType`` number of an UPDATE: the only events that coalesce
UPDATE = by_code("u").number
_ENDS = frozenset((by_code("c").number, by_code("d").number))

#: the (object, field) of a window: the object id as spelled in keys, the field name
Window = tuple[str, str]


def coalesced(d: Dispatch) -> bool:
    """Whether trigger ``d`` goes into a coalescing window (an UPDATE of such a target)."""
    return d.event_type == UPDATE and COALESCE_MS_OPTION in d.target.options


def _event(entry: OutboxEntry, d: Dispatch) -> OutboxEvent:
    """The event of ``entry`` that trigger ``d`` is for (its ``event_id`` ends with the
    event's index)."""
    index = int(d.event_id.rsplit("/", 1)[1])
    return next(e for e in entry.events if e.index == index)


def window_of(plan: Plan, d: Dispatch) -> Window:
    """The (object, field) whose window trigger ``d`` of ``plan`` goes into."""
    return plan.entry.object_segment, _event(plan.entry, d).key


def _ending(entry: OutboxEntry) -> list[Window]:
    """The (object, field)s that a CREATE or DELETE event of ``entry`` ends."""
    return [(entry.object_segment, e.key) for e in entry.events if e.event_type in _ENDS]


def cuts(
    plans: Sequence[Plan], diverted: Sequence[Sequence[Dispatch]], live: set[Window]
) -> list[tuple[int, list[Window]]]:
    """Where a read's plans split: ``(i, windows)`` when plan ``i`` creates or deletes an
    (object, field) with an open window (``live``: those open before the read, then those
    the plans before ``i`` open): those windows go out before plan ``i``'s triggers."""
    live = set(live)
    found: list[tuple[int, list[Window]]] = []
    for i, (plan, mine) in enumerate(zip(plans, diverted, strict=True)):
        ending = [w for w in _ending(plan.entry) if w in live]
        if ending:
            found.append((i, ending))
            live.difference_update(ending)
        live.update(window_of(plan, d) for d in mine if coalesced(d))
    return found


def _target_index(event: OutboxEvent, d: Dispatch) -> int:
    """The index of ``d``'s target among ``event``'s (its invocation id is derived from it)."""
    return next(
        i for i in range(len(event.targets)) if invocation_id(d.event_id, i) == d.invocation_id
    )


def coalesced_dispatch(
    members: Sequence[Dispatch],
    plans: Sequence[Plan],
    payload_format: str,
    delivery: Delivery,
) -> Dispatch:
    """The one trigger of a window: its last update's own trigger (same ``invocation_id``,
    key and bytes), with ``oprc.include_old`` carrying the first update's old value."""
    last = members[-1]
    if len(members) == 1 or not includes_old(last.target.options):
        return last
    first_old = _event(plans[0].entry, members[0]).old
    entry = plans[-1].entry
    event = _event(entry, last)
    if first_old == event.old:
        return last
    earliest = dataclasses.replace(event, old=first_old)
    return build_dispatch(
        entry,
        earliest,
        _target_index(event, last),
        payload_format=payload_format,
        delivery=delivery,
    )
