"""The worker's side of trigger conditions (``req_options["oprc.when"]``).

Per (event, target): a target without a condition fires; one with a condition fires only
when it is true (:mod:`~oprc_redis_events.protocol.conditions`).  A condition that errs at
run time (``double("abc")``) is false: counted (``condition_errors``) and logged once per
trigger (the object, event, key and target), never a dead letter.  A target whose
expression does not compile (written behind the API's back) fails ``check_target`` and is
dead-lettered as a forged target.
"""

from __future__ import annotations

import logging

from ..protocol.conditions import WHEN_OPTION, ConditionFailed, holds, variables
from ..protocol.outbox import OutboxEntry, OutboxEvent
from ..protocol.triggers import check_target
from .logonce import ThrottledLog
from .stats import WorkerStats

__all__ = ["event_values", "skipped"]

log = logging.getLogger("oprc_redis_events.worker")


def event_values(entry: OutboxEntry, event: OutboxEvent) -> dict[str, object]:
    """The variables a condition sees for ``event`` of ``entry``."""
    return variables(
        old=event.old,
        new=event.payload,
        event_type=event.event_type,
        key=event.key,
        object_id=entry.object_segment,
        cls=entry.partition.cls_id,
        partition=entry.partition.partition_id,
        depth=entry.depth,
    )


def _trigger(entry: OutboxEntry, event: OutboxEvent, index: int) -> tuple[object, ...]:
    """What "once per trigger" means for the log: (object, event, key, target)."""
    where = (entry.partition.member, entry.object_segment, event.event_type, event.key)
    return ("condition", *where, index, event.targets[index].options.get(WHEN_OPTION))


def skipped(
    entry: OutboxEntry,
    event: OutboxEvent,
    index: int,
    stats: WorkerStats,
    problems: ThrottledLog,
) -> bool:
    """Whether target ``index`` of ``event`` does not fire: its condition is false or erred.

    Raises ``InvalidIdError`` (a forged target) as ``check_target`` does."""
    target = event.targets[index]
    expression = target.options.get(WHEN_OPTION)
    if expression is None:
        return False
    check_target(target)
    try:
        fires = holds(expression, event_values(entry, event))
    except ConditionFailed as err:
        stats.condition_errors += 1
        problems.warning(
            _trigger(entry, event, index),
            "condition %s=%r of a target %s.%s (object %s of %s, key %r) is false: it "
            "failed on this event: %s",
            WHEN_OPTION,
            expression,
            target.cls_id,
            target.fn_id,
            entry.object_segment,
            entry.partition.member,
            event.key,
            err,
        )
        return True
    if not fires:
        stats.condition_skips += 1
    return not fires
