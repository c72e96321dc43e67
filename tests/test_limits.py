"""Resource limits of one writer: enforced by the API with an error naming the limit, its
value and how to raise it, and by the worker on what it reads (a dead letter)."""

from __future__ import annotations

import asyncio

import pytest
import redis

from oprc_redis_events import (
    InvalidTriggerError,
    InvalidValueError,
    ObjectEvent,
    ObjectStore,
    Settings,
    TriggerTarget,
)
from oprc_redis_events.client.core import ObjectRef, build_write
from oprc_redis_events.config import ENV_VARS, LIMITS
from oprc_redis_events.errors import ConfigError
from oprc_redis_events.protocol.encode import build_dispatch
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.limits import Limits, limits_of
from oprc_redis_events.protocol.outbox import PoisonEntryError, decode_entry
from oprc_redis_events.protocol.triggers import coerce_event, encode_targets, to_target
from oprc_redis_events.worker.dispatch import screened
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher

from .helpers import watch_all

REF = ObjectRef.of("orders", 0, 1)
SMALL = Limits(
    max_value_bytes=4,
    max_fields_per_write=2,
    max_targets_per_trigger=2,
    max_config_bytes=200,
    max_entry_bytes=8,
)


def _named(err: pytest.ExceptionInfo[Exception], name: str) -> None:
    message = str(err.value)
    assert f"the limit is {getattr(SMALL, name)} ({name}" in message, message
    assert ENV_VARS[name] in message, message


@pytest.mark.quick
def test_the_limits_are_settings_with_environment_variables() -> None:
    assert limits_of(Settings.from_env({})) == Limits()
    assert set(LIMITS) <= set(ENV_VARS)
    env = {ENV_VARS[name]: "7" for name in LIMITS}
    assert limits_of(Settings.from_env(env)) == Limits(**dict.fromkeys(LIMITS, 7))
    with pytest.raises(ConfigError, match="max_value_bytes must be >= 1"):
        Settings.from_env({"OPRC_EVENTS_MAX_VALUE_BYTES": "0"})


@pytest.mark.quick
@pytest.mark.parametrize(
    ("write", "name"),
    [
        ({"mode": "update", "entries": {1: b"12345"}}, "max_value_bytes"),
        ({"mode": "update", "entries": {1: b"a", 2: b"b", 3: b"c"}}, "max_fields_per_write"),
        ({"mode": "delete_fields", "delete_keys": [1, 2, 3]}, "max_fields_per_write"),
        ({"mode": "update", "entries": {1: b"1234", 2: b"1234"}}, "max_entry_bytes"),
        ({"mode": "func", "func": ("f", "fc", b"12345")}, "max_value_bytes"),
    ],
    ids=["value", "fields", "deleted-fields", "entry", "function-output"],
)
def test_a_write_over_a_limit_is_refused_naming_it(write: dict[str, object], name: str) -> None:
    mode = str(write.pop("mode"))
    with pytest.raises(InvalidValueError) as info:
        build_write(REF, mode, limits=SMALL, **write)  # type: ignore[arg-type]
    _named(info, name)


@pytest.mark.quick
def test_a_write_at_the_limits_passes() -> None:
    build_write(REF, "update", entries={1: b"123", 2: b"123"}, limits=SMALL)


@pytest.mark.quick
def test_a_configuration_over_a_limit_is_refused_naming_it() -> None:
    many = ObjectEvent()
    many.data_trigger[1].on_update.extend(TriggerTarget(cls_id="s", fn_id="f") for _ in range(3))
    with pytest.raises(InvalidTriggerError, match=r"data_trigger\[1\]\.on_update has 3") as info:
        coerce_event(many, SMALL)
    _named(info, "max_targets_per_trigger")
    spread = ObjectEvent()  # two targets per trigger on several triggers: allowed
    for key in (1, 2, 3):
        spread.data_trigger[key].on_update.extend(TriggerTarget(cls_id="s", fn_id=f) for f in "ab")
    coerce_event(spread, SMALL)
    big = ObjectEvent()
    big.data_trigger[1].on_update.append(TriggerTarget(cls_id="s" * 150, fn_id="f" * 100))
    with pytest.raises(InvalidTriggerError) as info:
        coerce_event(big, SMALL)
    _named(info, "max_config_bytes")
    with pytest.raises(InvalidTriggerError) as info:
        coerce_event(big.SerializeToString(), SMALL)
    _named(info, "max_config_bytes")


def _entry(payload: bytes, targets: int) -> dict[bytes, bytes]:
    target = to_target(TriggerTarget(cls_id="s", fn_id="f"))
    fields = {b"o": b"1", b"v": b"1", b"d": b"0", b"ts": b"1", b"n": b"1", b"e1": b"4"}
    return fields | {b"k1": b"1", b"p1": payload, b"t1": encode_targets([target] * targets)}


@pytest.mark.quick
@pytest.mark.parametrize(
    ("payload", "targets", "name"),
    [(b"12345678", 3, "max_targets_per_trigger"), (b"12345678", 1, "max_entry_bytes")],
)
def test_the_worker_refuses_an_entry_over_the_limits(
    payload: bytes, targets: int, name: str
) -> None:
    entry = decode_entry(PartitionKeys.of("orders", 0), "1-0", _entry(payload, targets))
    with pytest.raises(PoisonEntryError) as info:
        screened(entry, lambda event, i: None, SMALL)  # type: ignore[arg-type,return-value]
    _named(info, name)  # type: ignore[arg-type]
    small = decode_entry(PartitionKeys.of("orders", 0), "1-0", _entry(b"1234567", 2))
    assert len(screened(small, lambda event, i: build_dispatch(small, event, i), SMALL)[0]) == 2


def test_the_store_and_the_worker_enforce_the_settings(redis_url: str, client: redis.Redis) -> None:
    """A store with a small limit refuses; a worker with a smaller one than the writer's
    dead-letters what it reads, with the reason."""
    store = ObjectStore.from_url(redis_url, max_value_bytes=4)
    try:
        store.create("orders", 0, 1, {42: b"1234"}, event=watch_all([42]))
        with pytest.raises(InvalidValueError, match="OPRC_EVENTS_MAX_VALUE_BYTES"):
            store.update("orders", 0, 1, {42: b"12345"})
        assert client.hget(PartitionKeys.of("orders", 0).obj("1"), "42") == b"1234"
    finally:
        store.close()
    publisher = MemoryPublisher()
    settings = Settings.from_env({}, redis_url=redis_url, max_entry_bytes=3)
    stats = asyncio.run(Worker(settings, publisher=publisher).run_async(burst=True))
    assert stats.dead_letters == 1 and not publisher.sent
    [(_, letter)] = client.xrange(PartitionKeys.of("orders", 0).dead_letters)
    reason = letter[b"dlq:reason"].decode()
    assert reason.startswith("cannot be dispatched: the entry holds 6 bytes"), reason
    assert "OPRC_EVENTS_MAX_ENTRY_BYTES" in reason


@pytest.mark.quick
def test_each_settings_object_has_its_own_limits() -> None:
    """limits_of holds the limits per settings object (no hash per write): a copy with
    another limit gets its own, and more settings than it holds are worked out again."""
    import dataclasses

    from oprc_redis_events.protocol.limits import HELD_SETTINGS, limits_of

    base = Settings.from_env({})
    copies = [dataclasses.replace(base, max_value_bytes=1000 + i) for i in range(HELD_SETTINGS + 5)]
    for i, settings in enumerate(copies):
        assert limits_of(settings).max_value_bytes == 1000 + i
        assert limits_of(settings) is limits_of(settings)
    assert limits_of(base).max_value_bytes == base.max_value_bytes
    assert [limits_of(s).max_value_bytes for s in copies] == [1000 + i for i in range(len(copies))]
