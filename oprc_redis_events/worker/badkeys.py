"""Keys that keyspace capture skips (wrong type, a name that does not parse, a malformed
partition member): each is logged once, not on every notification or reconcile, and
again only if it was fixed and broke once more."""

from __future__ import annotations

import logging

import redis

from ..lua.loader import refusal

__all__ = ["BadKeys", "bad_key_reason", "display"]

log = logging.getLogger("oprc_redis_events.worker.capture")

REMEMBERED = 10_000  # bad keys remembered (the oldest is forgotten, and may be logged again)


def display(name: bytes | str) -> str:
    """A key or member as text for a log line, whatever bytes it holds."""
    return name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else name


class BadKeys:
    """The keys being skipped, and how many times one was."""

    def __init__(self) -> None:
        self._logged: dict[str, str] = {}
        self.skipped = 0

    def skip(self, key: str, why: str) -> None:
        """Skip ``key`` because of ``why``; logged the first time only."""
        self.skipped += 1
        if key in self._logged:
            return
        if len(self._logged) >= REMEMBERED:
            self._logged.pop(next(iter(self._logged)))
        self._logged[key] = why
        log.warning(
            "capture: skipping %r: %s. Fix or delete the key in question; this is logged "
            "once, and everything else is still captured",
            key,
            why,
        )

    def fixed(self, key: str) -> None:
        """``key`` was captured: it is no longer bad."""
        if self._logged.pop(key, None) is not None:
            log.info("capture: %r is captured again", key)

    def __len__(self) -> int:
        return len(self._logged)


def bad_key_reason(reply: object) -> str | None:
    """What is wrong with the key when capture.lua refused it (a key of the wrong type, or
    corrupted state such as a garbage version or a full outbox), else ``None``."""
    return refusal(str(reply)) if isinstance(reply, redis.ResponseError) else None
