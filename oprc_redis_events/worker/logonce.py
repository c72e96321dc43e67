"""Log a recurring problem once, then a count of its repeats at a slow interval.

A worker loops every second; a problem that persists (a malformed key, a step that keeps
failing) would otherwise write the same line, or the same traceback, every second.
:class:`ThrottledLog` writes the first occurrence of a problem at once (with its
traceback when given one), then counts the repeats and writes one line with the count
when ``interval_s`` has passed since its last line.  Problems are told apart by a key
chosen by the caller (``("partition", stream)``, ``("task", name)``...);
:meth:`ThrottledLog.resolved` forgets one when it went away, so it is logged at once if
it comes back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["REPEAT_INTERVAL_S", "ThrottledLog"]

#: seconds between the count lines of a problem that keeps happening
REPEAT_INTERVAL_S = 60.0


@dataclass
class _Seen:
    last_line: float
    repeats: int = 0


class ThrottledLog:
    """A logger's lines, at most one per problem per ``interval_s`` (see the module doc)."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = REPEAT_INTERVAL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_problems: int = 10_000,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self.max_problems = max_problems
        self._seen: dict[Hashable, _Seen] = {}

    def log(
        self,
        key: Hashable,
        level: int,
        msg: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> bool:
        """Log ``msg % args`` if ``key`` is new, or a count line if its interval passed;
        return whether a line was written.  ``exc_info`` goes on the first line only."""
        now = self.clock()
        seen = self._seen.get(key)
        if seen is None:
            if len(self._seen) >= self.max_problems:  # bounded: forget the oldest
                del self._seen[next(iter(self._seen))]
            self._seen[key] = _Seen(now)
            self.logger.log(level, msg, *args, exc_info=exc_info)
            return True
        seen.repeats += 1
        if now - seen.last_line < self.interval_s:
            return False
        self.logger.log(
            level,
            msg + " (%d more time(s) in the last %.0f s)",
            *args,
            seen.repeats,
            now - seen.last_line,
        )
        seen.last_line, seen.repeats = now, 0
        return True

    def warning(
        self, key: Hashable, msg: str, *args: object, exc_info: BaseException | None = None
    ) -> bool:
        return self.log(key, logging.WARNING, msg, *args, exc_info=exc_info)

    def error(
        self, key: Hashable, msg: str, *args: object, exc_info: BaseException | None = None
    ) -> bool:
        return self.log(key, logging.ERROR, msg, *args, exc_info=exc_info)

    def resolved(self, key: Hashable) -> bool:
        """Forget ``key`` (it went away); return whether it was a known problem."""
        return self._seen.pop(key, None) is not None

    def __contains__(self, key: Hashable) -> bool:
        return key in self._seen
