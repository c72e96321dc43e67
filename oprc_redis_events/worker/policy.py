"""What the worker does after a dispatch that did not go out: a pure function of the
entry's state and the settings, tested without Redis (as h11 keeps HTTP's state machine
free of I/O).

- held (hold mode: no subscriber matches the target's key): wait and look again every
  ``HOLD_POLL_MS``, until ``hold_max_age_ms`` after the write, then dead-letter;
- failed (the publisher raised, a GET got no answer, time ran out): retry after
  ``retry_base_ms`` doubling up to ``retry_max_ms``, until Redis has delivered the entry
  ``max_deliveries`` times, then dead-letter.

The partition waits meanwhile, so the order of writes holds through retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import Settings

__all__ = ["HOLD_POLL_MS", "Decision", "Failure", "after_failure"]

HOLD_POLL_MS = 100


@dataclass(frozen=True, slots=True)
class Failure:
    """An entry whose dispatch did not go out."""

    held_key: str | None  # hold mode: the key no subscriber matched
    attempts: int  # deliveries so far, as Redis counts them (0 when held)
    age_ms: int  # since the write


@dataclass(frozen=True, slots=True)
class Decision:
    action: Literal["hold", "retry", "dead_letter"]
    delay_ms: int  # until the partition tries again
    reason: str = ""  # why it is dead-lettered


def after_failure(failure: Failure, settings: Settings) -> Decision:
    """Hold, retry or dead-letter ``failure`` (see the module docstring)."""
    if failure.held_key is not None:
        if failure.age_ms > settings.hold_max_age_ms:
            why = f"no subscriber for {failure.held_key} within {settings.hold_max_age_ms} ms"
            return Decision("dead_letter", 0, f"{why} of the write")
        return Decision("hold", HOLD_POLL_MS)
    if failure.attempts >= settings.max_deliveries:
        return Decision("dead_letter", 0, f"delivery failed {failure.attempts} times")
    delay = settings.retry_base_ms * 2 ** max(failure.attempts - 1, 0)
    return Decision("retry", min(delay, settings.retry_max_ms))
