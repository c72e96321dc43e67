"""The worker's decision after a dispatch that did not go out: pure, no Redis."""

from __future__ import annotations

import pytest

from oprc_redis_events import Settings
from oprc_redis_events.worker.policy import HOLD_POLL_MS, Decision, Failure, after_failure

pytestmark = pytest.mark.quick  # no server: `make quick`

SETTINGS = Settings(max_deliveries=4, retry_base_ms=200, retry_max_ms=500, hold_max_age_ms=1000)


def test_failures_back_off_then_dead_letter() -> None:
    delays = [after_failure(Failure(None, n, 0), SETTINGS) for n in (1, 2, 3)]
    assert delays == [Decision("retry", 200), Decision("retry", 400), Decision("retry", 500)]
    assert after_failure(Failure(None, 4, 0), SETTINGS) == Decision(
        "dead_letter", 0, "delivery failed 4 times"
    )


def test_a_held_entry_waits_until_its_maximum_age() -> None:
    key = "oprc/svc/0/async/fn/*"
    assert after_failure(Failure(key, 0, 1000), SETTINGS) == Decision("hold", HOLD_POLL_MS)
    late = after_failure(Failure(key, 0, 1001), SETTINGS)
    assert late.action == "dead_letter"
    assert late.reason == f"no subscriber for {key} within 1000 ms of the write"


def test_a_held_entry_is_never_counted_as_a_delivery() -> None:
    # hold mode does not spend the delivery budget: age alone ends it
    assert after_failure(Failure("k", 99, 0), SETTINGS).action == "hold"


def test_errors_redis_py_maps_to_its_own_classes_are_server_wide() -> None:
    import redis.exceptions as e

    from oprc_redis_events.worker.broken import is_server_wide

    for err in (e.ReadOnlyError("You can't write"), e.OutOfMemoryError("used memory")):
        assert is_server_wide(err)
    assert is_server_wide(e.ResponseError("MISCONF snapshots"))
    assert not is_server_wide(e.ResponseError("WRONGTYPE Operation against a key"))
