"""worker: the sidecar that reads the outbox streams and dispatches triggers to Zenoh.

``loop`` is the :class:`Worker` (``run()`` for a process, ``run_async()`` to embed it);
reading, handling and acks of entries, partition discovery, leases and maintenance,
dispatch and publishers (Zenoh and in-memory), dead letters, retention, keyspace capture,
supervision of its tasks, statistics and metrics.  May import everything below it
(``errors``, ``config``, ``pb``, ``protocol``, ``lua``, ``connect``, ``client``), not
``functions``, ``dev`` or ``cli``.
"""

from __future__ import annotations

from .loop import Worker

__all__ = ["Worker"]
