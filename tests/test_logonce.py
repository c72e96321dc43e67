"""ThrottledLog: a recurring problem is logged once, then with a count at a slow interval."""

from __future__ import annotations

import logging

import pytest

from oprc_redis_events.worker.logonce import ThrottledLog

pytestmark = pytest.mark.quick  # no server: `make quick`

LOGGER = logging.getLogger("tests.logonce")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER.name]


def test_a_problem_is_logged_once_then_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    clock = Clock()
    problems = ThrottledLog(LOGGER, interval_s=60, clock=clock)
    for _ in range(100):  # a problem every second, for 100 s
        problems.warning(("member", "x"), "member %r is malformed", "x")
        clock.now += 1
    assert messages(caplog) == [
        "member 'x' is malformed",
        "member 'x' is malformed (60 more time(s) in the last 60 s)",
    ]


def test_problems_are_told_apart_by_key_and_forgotten_when_resolved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    clock = Clock()
    problems = ThrottledLog(LOGGER, interval_s=60, clock=clock)
    assert problems.error("a", "problem a")
    assert problems.error("b", "problem b")
    assert not problems.error("a", "problem a")
    assert "a" in problems
    assert problems.resolved("a") and not problems.resolved("a")
    assert problems.error("a", "problem a")  # back again: logged at once
    assert messages(caplog) == ["problem a", "problem b", "problem a"]


def test_only_the_first_line_carries_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    clock = Clock()
    problems = ThrottledLog(LOGGER, interval_s=10, clock=clock)
    err = RuntimeError("boom")
    for _ in range(3):
        problems.error("step", "step failed", exc_info=err)
        clock.now += 10
    records = [r for r in caplog.records if r.name == LOGGER.name]
    assert len(records) == 3
    assert [r.exc_info is not None for r in records] == [True, False, False]


def test_the_number_of_problems_is_bounded() -> None:
    problems = ThrottledLog(LOGGER, max_problems=3)
    for key in range(10):
        problems.warning(key, "problem %d", key)
    assert [k in problems for k in range(10)] == [False] * 7 + [True] * 3
