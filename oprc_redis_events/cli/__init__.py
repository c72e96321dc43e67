"""cli: the ``oprc-redis-events`` command (click), the only place that configures logging.

``main.py`` is the root group; one module per command family (``worker``, ``objects``,
``tail``, ``dlq``, ``groups``, ``tools``); ``base.py`` holds the shared options and the one
place that turns a user mistake or an unreachable server into one ``Error: ...`` line.
May import every other sub-package; nothing imports it.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
