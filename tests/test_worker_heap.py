"""The worker's heap in a process of its own: what is loaded is frozen, young collections
are small, full collections are the maintenance's."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import gc
from oprc_redis_events.worker.waking import OLDEST_THRESHOLD, YOUNG_THRESHOLD, freeze_loaded_heap
before = gc.get_threshold()
freeze_loaded_heap()
after = gc.get_threshold()
assert gc.get_freeze_count() > 10000, gc.get_freeze_count()  # zenoh, redis-py, protobuf
assert after == (YOUNG_THRESHOLD, before[1], OLDEST_THRESHOLD), (before, after)
assert YOUNG_THRESHOLD < before[0], before
print("ok")
"""


@pytest.mark.quick
def test_the_loaded_heap_is_frozen_and_young_collections_are_small() -> None:
    """In a process of its own: freezing is for the whole interpreter."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
