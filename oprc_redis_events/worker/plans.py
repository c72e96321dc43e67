"""What one outbox entry sends: its :class:`Plan` (the dispatches of its targets, and the
targets that must not be sent), and the dead letters of those (pure).

A target read back from Redis may have been forged by hand: :func:`screened` skips it alone
and :func:`forged_letters` dead-letters it, with its entry, once the rest went out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import InvalidIdError
from ..protocol.conditions import WHEN_OPTION
from ..protocol.encode import Dispatch
from ..protocol.limits import Limits
from ..protocol.outbox import OutboxEntry, OutboxEvent, PoisonEntryError
from ..protocol.triggers import Target, UnreadableTarget, only_targets
from .deadletters import DeadLetterRecord
from .stats import WorkerStats

__all__ = ["REASONS_SHOWN", "Forged", "Plan", "forged_letters", "screened"]


#: a target of an entry that must not become a Zenoh key: (event index, target index, reason)
Forged = tuple[int, int, str]


@dataclass
class Plan:
    """One entry of a batch, the dispatches it makes and its forged targets (not sent)."""

    entry_id: str
    fields: dict[bytes, bytes]
    entry: OutboxEntry
    dispatches: list[Dispatch]
    forged: list[Forged] = field(default_factory=list)


#: forged targets named one by one in a dead letter's reason; the rest are counted
REASONS_SHOWN = 10


def _shown(target: Target) -> str:
    if isinstance(target, UnreadableTarget):
        return "(undecodable)"
    return repr(f"{target.cls_id}/{target.partition_id}/{target.fn_id}")[:80]


def _check_size(entry: OutboxEntry, limits: Limits) -> None:
    """Raise :class:`PoisonEntryError` when ``entry`` is beyond what the API lets a write
    make: its events' keys and values, the targets of one event."""
    size = 0
    for event in entry.events:
        size += len(event.key) + len(event.payload or b"")
        if len(event.targets) > limits.max_targets_per_trigger:
            what = f"event {event.index} has {len(event.targets)} targets"
            raise PoisonEntryError(limits.exceeded(what, "max_targets_per_trigger"))
    if size > limits.max_entry_bytes:
        what = f"the entry holds {size} bytes of keys and values"
        raise PoisonEntryError(limits.exceeded(what, "max_entry_bytes"))


def screened(
    entry: OutboxEntry,
    build: Callable[[OutboxEvent, int], Dispatch],
    limits: Limits,
    skip: Callable[[OutboxEvent, int], bool] | None = None,
) -> tuple[list[Dispatch], list[Forged]]:
    """The dispatches of ``entry``'s targets that ``build`` (``build_dispatch``) accepts,
    and the others: a target read back from Redis may have been forged by hand, and fails
    the API's own rule (:func:`~oprc_redis_events.protocol.triggers.check_target`, which
    ``build_dispatch`` applies first); it is skipped alone.  A target with a condition
    (``oprc.when``) for which ``skip`` is true is not built (``skip`` is asked about those
    only).  An entry beyond the limits is a poison entry (:class:`PoisonEntryError`)."""
    _check_size(entry, limits)
    dispatches: list[Dispatch] = []
    forged: list[Forged] = []
    for event in entry.events:
        for i, target in enumerate(event.targets):
            try:  # build_dispatch checks the target (check_target) first; the entry's own
                # fields were checked when decoded
                if skip is None or WHEN_OPTION not in target.options or not skip(event, i):
                    dispatches.append(build(event, i))
            except InvalidIdError as err:
                where = f"event {event.index} target {i} {_shown(event.targets[i])}"
                forged.append((event.index, i, f"{where}: {err}"))
    return dispatches, forged


def _stream_order(record: DeadLetterRecord) -> tuple[int, ...]:
    return tuple(int(part) for part in record[0].split("-"))


def forged_letters(
    dead: list[DeadLetterRecord], plans: list[Plan], stats: WorkerStats
) -> list[DeadLetterRecord]:
    """``dead`` and a dead letter for each plan with forged targets, in outbox order: the
    entry with, as its targets (``t<i>``), only the forged ones, so a replay after a fix
    sends nothing twice."""
    letters = list(dead)
    for plan in plans:
        if not plan.forged:
            continue
        stats.forged_targets += len(plan.forged)
        fields = dict(plan.fields)
        for event in plan.entry.events:
            keep = [i for e, i, _ in plan.forged if e == event.index]
            name = b"t%d" % event.index
            fields[name] = only_targets(fields[name], keep)
        shown = [r for *_, r in plan.forged[:REASONS_SHOWN]]
        more = len(plan.forged) - len(shown)
        shown += [f"and {more} more (each in this letter's t<i>)"] if more else []
        reason = "cannot be dispatched: forged target: " + "; ".join(shown)
        letters.append((plan.entry_id, fields, reason, "", 1))
    return sorted(letters, key=_stream_order) if len(letters) > len(dead) else dead
