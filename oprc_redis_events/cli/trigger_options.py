"""The options of ``triggers add`` / ``triggers remove`` that build a target's req_options:
``--option K=V`` (repeatable), ``--when EXPR`` (oprc.when), ``--include-old``,
``--batch-max N`` (oprc.batch_max), ``--batch-ms T`` (oprc.batch_ms) and ``--coalesce-ms T``
(oprc.coalesce_ms)."""

from __future__ import annotations

import click

from ..protocol.batching import BATCH_MAX_OPTION, BATCH_MS_OPTION, MAX_BATCH_MAX, MAX_BATCH_MS
from ..protocol.coalescing import COALESCE_MS_OPTION, MAX_COALESCE_MS
from ..protocol.conditions import INCLUDE_OLD_OPTION, WHEN_OPTION
from . import admin

__all__ = ["edit_args", "target_options"]


def _check_options(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    seen: set[str] = set()
    for option in value:
        key = option.partition("=")[0]
        if "=" not in option or not key:
            raise click.BadParameter(
                f"{option!r} is not KEY=VALUE; write e.g. --option channel=sms", ctx, param
            )
        if key in seen:
            raise click.BadParameter(f"{key!r} is given twice; give each KEY once", ctx, param)
        seen.add(key)
    return value


edit_args = [
    click.argument("event", type=click.Choice(admin.DATA_SLOTS + admin.FUNC_SLOTS)),
    click.argument("key"),
    click.argument("target"),
    click.option(
        "--option",
        "options",
        multiple=True,
        metavar="K=V",
        callback=_check_options,
        help="A req_option of the target, KEY=VALUE (repeatable).",
    ),
    click.option(
        "--when",
        metavar="EXPR",
        help="A CEL condition (req_options oprc.when): the target fires only when it is true.",
    ),
    click.option(
        "--include-old",
        is_flag=True,
        help="Send the field's previous value too (req_options oprc.include_old=true).",
    ),
    click.option(
        "--batch-max",
        type=click.IntRange(1, MAX_BATCH_MAX),
        metavar="N",
        help="Deliver up to N triggers in one invocation (req_options oprc.batch_max).",
    ),
    click.option(
        "--batch-ms",
        type=click.IntRange(1, MAX_BATCH_MS),
        metavar="T",
        help="Deliver what gathered within T ms of a batch's first trigger in one invocation "
        "(req_options oprc.batch_ms).",
    ),
    click.option(
        "--coalesce-ms",
        type=click.IntRange(1, MAX_COALESCE_MS),
        metavar="T",
        help="Deliver the updates of one field within T ms of the first as one trigger, the "
        "last (req_options oprc.coalesce_ms).",
    ),
]


def target_options(
    options: tuple[str, ...],
    when: str | None,
    include_old: bool,
    batch_max: int | None = None,
    batch_ms: int | None = None,
    coalesce_ms: int | None = None,
) -> dict[str, str]:
    """The target's req_options: ``--option`` pairs, ``--when``, ``--include-old``,
    ``--batch-max``, ``--batch-ms`` and ``--coalesce-ms``."""
    found = dict(o.split("=", 1) for o in options if "=" in o)
    for flag, key, value in (
        ("--when", WHEN_OPTION, when),
        ("--include-old", INCLUDE_OLD_OPTION, "true" if include_old else None),
        ("--batch-max", BATCH_MAX_OPTION, None if batch_max is None else str(batch_max)),
        ("--batch-ms", BATCH_MS_OPTION, None if batch_ms is None else str(batch_ms)),
        ("--coalesce-ms", COALESCE_MS_OPTION, None if coalesce_ms is None else str(coalesce_ms)),
    ):
        if value is None:
            continue
        if key in found:
            raise click.UsageError(f"{flag} and --option {key}=... both set {key}: give one")
        found[key] = value
    return found
