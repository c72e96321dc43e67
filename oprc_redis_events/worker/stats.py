"""The worker's counters: what its logs, its summary line and its metrics report."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["WorkerStats"]


@dataclass
class WorkerStats:
    """Counters since the worker started."""

    entries_read: int = 0
    events_read: int = 0
    triggers_sent: int = 0
    batches_sent: int = 0  # batches of batched targets (oprc.batch_max / oprc.batch_ms)
    updates_coalesced: int = 0  # updates folded into a later one's trigger (oprc.coalesce_ms)
    depth_stops: int = 0
    dead_letters: int = 0
    retries: int = 0
    held: int = 0
    claimed: int = 0
    trimmed: int = 0
    forged_targets: int = 0
    condition_skips: int = 0  # targets whose oprc.when was false
    condition_errors: int = 0  # targets whose oprc.when failed at run time (taken as false)
    sent_by_target: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
