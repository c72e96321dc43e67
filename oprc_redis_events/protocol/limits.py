"""The resource limits of one writer, as one value (README "Limits").

They are settings (:data:`~oprc_redis_events.config.LIMITS`, ``OPRC_EVENTS_MAX_*``): the API
refuses a write or a configuration beyond them, the worker dead-letters an outbox entry
beyond them, and every refusal names the limit, its value and how to raise it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ENV_VARS, LIMITS, Settings

__all__ = ["DEFAULT_LIMITS", "Limits", "limits_of"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one writer may ask of Redis and the worker (``Settings.limits``)."""

    max_value_bytes: int = LIMITS["max_value_bytes"]
    max_fields_per_write: int = LIMITS["max_fields_per_write"]
    max_targets_per_trigger: int = LIMITS["max_targets_per_trigger"]
    max_config_bytes: int = LIMITS["max_config_bytes"]
    max_entry_bytes: int = LIMITS["max_entry_bytes"]

    def exceeded(self, what: str, name: str) -> str:
        """The message for ``what`` (``"value of field 42 is 9000000 bytes"``) over the
        limit ``name``: the limit's value and how to raise it."""
        return (
            f"{what}; the limit is {getattr(self, name)} ({name}: raise it with "
            f"the environment variable {ENV_VARS[name]} or Settings({name}=...), for writers "
            "and workers alike)"
        )


DEFAULT_LIMITS = Limits()


#: id(settings) -> (those settings, kept alive so that their id is not reused; their limits)
_held: dict[int, tuple[Settings, Limits]] = {}
#: settings objects held at most (then forgotten all at once: a process has a few)
HELD_SETTINGS = 64


def limits_of(settings: Settings) -> Limits:
    """The limits ``settings`` hold (worked out once per settings object: every write asks,
    and hashing the settings for a cache cost about 2 us)."""
    held = _held.get(id(settings))
    if held is not None and held[0] is settings:
        return held[1]
    if len(_held) >= HELD_SETTINGS:
        _held.clear()
    limits = Limits(**{name: getattr(settings, name) for name in LIMITS})
    _held[id(settings)] = (settings, limits)
    return limits
