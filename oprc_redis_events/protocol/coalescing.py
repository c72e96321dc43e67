"""Coalescing: ``req_options["oprc.coalesce_ms"] = "T"`` (pure).

A target with this option gets the UPDATEs of one (object, field) that came within T ms of
the first as ONE trigger: the last update's own trigger (its ``event_id``, ``invocation_id``,
timestamp and new value), whose ``previous_payload`` (with ``oprc.include_old``) is the
first update's old value.  A CREATE or DELETE of that (object, field) ends the window (the
coalesced update goes out before it).  Only UPDATEs coalesce: the target's CREATE, DELETE
and function triggers are delivered as usual, one by one.  With ``oprc.when``, the condition
decides per update whether it enters the window.  Batching and coalescing do not combine:
:func:`check_coalesce` refuses a target with both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .batching import BATCH_MAX_OPTION, BATCH_MS_OPTION

__all__ = [
    "COALESCE_MS_OPTION",
    "MAX_COALESCE_MS",
    "check_coalesce",
    "coalesce_ms",
    "is_coalesced",
]

COALESCE_MS_OPTION: Final = "oprc.coalesce_ms"
#: the largest ``oprc.coalesce_ms`` accepted (a window's entries stay unacknowledged that long)
MAX_COALESCE_MS: Final = 60_000


def check_coalesce(value: str | None, batch_max: str | None, batch_ms: str | None) -> None:
    """Raise ``ValueError`` naming ``oprc.coalesce_ms`` when ``value`` is not an integer
    from 1 to 60000, or when the target is batched too (naming both options)."""
    if value is None:
        return
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_COALESCE_MS:
        raise ValueError(
            f"req_options {COALESCE_MS_OPTION}={value!r} is not an integer from 1 to "
            f"{MAX_COALESCE_MS}"
        )
    batched = [o for o, v in ((BATCH_MAX_OPTION, batch_max), (BATCH_MS_OPTION, batch_ms)) if v]
    if batched:
        raise ValueError(
            f"req_options {COALESCE_MS_OPTION} and {' and '.join(batched)} do not combine: "
            "a target's updates are either coalesced or batched"
        )


def is_coalesced(options: Mapping[str, str]) -> bool:
    """Whether a target's updates are coalesced."""
    return COALESCE_MS_OPTION in options


def coalesce_ms(options: Mapping[str, str]) -> int | None:
    """The coalescing window of a target (ms), or ``None`` (the options were checked by
    ``check_target``)."""
    value = options.get(COALESCE_MS_OPTION)
    return None if value is None else int(value)
