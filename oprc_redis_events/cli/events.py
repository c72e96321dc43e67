"""``events off|on|status``: the runtime switch of event production for every writer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
import redis

from ..protocol.keys import PartitionKeys
from ..protocol.switch import ALL_CLASSES, SLOTS, SwitchState, switch_key
from .base import class_ids, redis_url_option
from .dlq import admin_run

__all__ = ["events", "off_note"]


def _classes(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """``--cls`` values, each once; given but empty (``--cls "$UNSET"``) is refused rather
    than read as every class."""
    classes = tuple(dict.fromkeys(class_ids(ctx, param, value)))
    if value and not classes:
        raise click.BadParameter("no class given (leave --cls out for every class)", param=param)
    return classes


_cls_option = click.option(
    "--cls",
    "classes",
    multiple=True,
    callback=_classes,
    help="Only this class (repeatable, or comma-separated); default: every class.",
)


@click.group()
def events() -> None:
    """Turn event production off and on for every writer at once, or show it.

    A flag in Redis that every write reads in the same script call: while events are off
    (for every class, or for --cls), writes still change the data but queue no events and
    fire no triggers, and keyspace capture reports nothing (what changed meanwhile is not
    reported later). ODGM_EVENTS_ENABLED stays each process's own default.
    """


def off_note(store: Any, cls_id: str, partition: int) -> str | None:
    """``explain``'s note when the switch a write to (``cls_id``, ``partition``) reads says
    off (``store``: a sync store), else ``None``."""
    from ..client.switch import check_reply

    key = switch_key(PartitionKeys.of(cls_id, partition), cluster=store.cluster)
    try:
        copy = store.client.hgetall(key)
    except redis.ResponseError as err:
        copy = check_reply(key, err)
    if not SwitchState.read([copy]).is_off(cls_id):
        return None
    return (
        f"events are off for class {cls_id} (`oprc-redis-events events status`): this change "
        "would fire nothing now"
    )


def _describe(state: SwitchState, classes: Sequence[str]) -> str:
    if state.disagreeing:
        raise click.ClickException(
            f"the switch's copies disagree: {state.disagreeing} of {SLOTS} slots differ from "
            "the others (an `events off`/`events on` was interrupted or ran at the same time "
            "as another); run the command that was meant to stand again, with the same --cls"
        )
    if classes:
        return "\n".join(
            f"events for class {c}: {'off' if state.is_off(c) else 'on'}" for c in classes
        )
    if ALL_CLASSES in state.off:
        return "events: off"
    if state.off:
        word = "class" if len(state.off) == 1 else "classes"
        return f"events: off for {word} {', '.join(sorted(state.off))}; on for the others"
    return "events: on"


def _switch(
    redis_url: str | None, cluster: bool | None, enabled: bool, classes: tuple[str, ...]
) -> SwitchState:
    from ..client.switch import switch_events

    return admin_run(
        redis_url, cluster, lambda c: switch_events(c, enabled=enabled, classes=classes)
    )


@events.command("off")
@redis_url_option()
@_cls_option
def events_off(redis_url: str | None, cluster: bool | None, classes: tuple[str, ...]) -> None:
    """Turn events off (for every class, or for --cls) for every writer."""
    click.echo(_describe(_switch(redis_url, cluster, False, classes), classes))


@events.command("on")
@redis_url_option()
@_cls_option
def events_on(redis_url: str | None, cluster: bool | None, classes: tuple[str, ...]) -> None:
    """Turn events on again (for every class, or for --cls)."""
    state = _switch(redis_url, cluster, True, classes)
    click.echo(_describe(state, classes))
    if classes and ALL_CLASSES in state.off:
        click.echo(
            "warning: events are still off for every class (`oprc-redis-events events on` "
            "without --cls turns them on)",
            err=True,
        )


@events.command("status")
@redis_url_option()
@_cls_option
def events_status(redis_url: str | None, cluster: bool | None, classes: tuple[str, ...]) -> None:
    """Print whether events are on or off (for every class, or for --cls)."""
    from ..client.switch import read_switch

    click.echo(_describe(admin_run(redis_url, cluster, read_switch), classes))
