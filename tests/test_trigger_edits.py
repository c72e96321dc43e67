"""Adding and removing one trigger target, atomically, on a real redis-server: through the
store (sync, asyncio, threads) and through the CLI (parallel processes)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio

from oprc_redis_events import (
    AsyncObjectStore,
    InvalidTriggerError,
    ObjectEvent,
    ObjectNotFoundError,
    ObjectStore,
    Settings,
    TriggerTarget,
)
from oprc_redis_events.protocol.triggers import build_index, decode_targets

from .helpers import events

META = "oprc:{orders:0}:meta:1"
CLI = [sys.executable, "-m", "oprc_redis_events.cli"]


def fn(i: int | str) -> TriggerTarget:
    return TriggerTarget(cls_id="svc", partition_id=0, fn_id=f"fn{i}")


def update_targets(store: ObjectStore) -> set[str]:
    return {t.fn_id for t in store.get_triggers("orders", 0, 1).data_trigger[42].on_update}


def assert_index_matches_triggers(client: redis.Redis) -> None:
    """The index fields t:<code>:<key> are exactly those of the stored configuration."""
    meta = client.hgetall(META)
    stored = {k.decode(): v for k, v in meta.items() if k.startswith(b"t:")}
    expected = build_index(ObjectEvent.FromString(meta.get(b"ev", b"")))
    assert {k: decode_targets(v) for k, v in stored.items()} == {
        k: decode_targets(v) for k, v in expected.items()
    }


def test_add_and_remove_one_target(store: ObjectStore, client: redis.Redis) -> None:
    store.create("orders", 0, 1, {42: b"a"})
    assert store.add_trigger("orders", 0, 1, "on_update", 42, fn(1)) is True
    assert store.add_trigger("orders", 0, 1, "on_update", 42, fn(1)) is False  # already there
    assert store.add_trigger("orders", 0, 1, "on_complete", "pay", fn(2)) is True
    assert update_targets(store) == {"fn1"}
    assert_index_matches_triggers(client)
    store.update("orders", 0, 1, {42: b"b"})
    assert events(client) == [("UPDATE", "42", b"b")]
    assert store.remove_trigger("orders", 0, 1, "on_update", 42, fn(1)) is True
    assert store.remove_trigger("orders", 0, 1, "on_update", 42, fn(1)) is False
    assert_index_matches_triggers(client)
    assert not client.hexists(META, "t:u:42")
    store.update("orders", 0, 1, {42: b"c"})  # no trigger left on field 42
    assert len(events(client)) == 1
    assert list(store.get_triggers("orders", 0, 1).func_trigger) == ["pay"]
    assert store.get("orders", 0, 1).version == 3  # type: ignore[union-attr]  # edits are not writes


def test_edits_of_a_missing_object_or_bad_input_change_nothing(
    store: ObjectStore, client: redis.Redis
) -> None:
    with pytest.raises(ObjectNotFoundError, match="orders/0/1 does not exist"):
        store.add_trigger("orders", 0, 1, "on_update", 42, fn(1))
    with pytest.raises(ObjectNotFoundError, match="orders/0/1 does not exist"):
        store.remove_trigger("orders", 0, 1, "on_update", 42, fn(1))
    assert client.dbsize() == 0
    store.create("orders", 0, 1, {42: b"a"})
    with pytest.raises(InvalidTriggerError, match="'on_updated' is not one of"):
        store.add_trigger("orders", 0, 1, "on_updated", 42, fn(1))
    with pytest.raises(InvalidTriggerError, match="'bad/cls' contains '/'"):
        store.add_trigger("orders", 0, 1, "on_update", 42, TriggerTarget(cls_id="bad/cls"))
    assert store.get_triggers("orders", 0, 1) == ObjectEvent()


def test_an_edit_that_loses_a_race_reads_the_configuration_again(
    store: ObjectStore, redis_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create("orders", 0, 1, {42: b"a"})
    other = ObjectStore(redis.Redis.from_url(redis_url), settings)
    write = store.call
    sent: list[object] = []

    def racing(call: Any) -> Any:
        if not sent:  # another client's edit lands between our read and our write
            assert other.add_trigger("orders", 0, 1, "on_update", 42, fn("theirs"))
        sent.append(call)
        return write(call)

    monkeypatch.setattr(store, "call", racing)
    assert store.add_trigger("orders", 0, 1, "on_update", 42, fn("mine")) is True
    assert len(sent) == 2  # refused once, then applied to the configuration read again
    assert update_targets(store) == {"fnmine", "fntheirs"}
    other.close()


def test_an_edit_sent_twice_by_redis_py_counts_as_done(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create("orders", 0, 1, {42: b"a"})
    write = store.call

    def twice(call: Any) -> Any:  # redis-py re-sends a command whose reply timed out
        write(call)
        return write(call)

    monkeypatch.setattr(store, "call", twice)
    assert store.add_trigger("orders", 0, 1, "on_update", 42, fn(1)) is True
    assert store.remove_trigger("orders", 0, 1, "on_update", 42, fn(1)) is True
    assert update_targets(store) == set()


def _in_threads(count: int, work: Callable[[int], None]) -> None:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as err:  # reported by the test below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def test_concurrent_adds_from_threads_keep_every_target(
    store: ObjectStore, client: redis.Redis, redis_url: str, settings: Settings
) -> None:
    store.create("orders", 0, 1, {42: b"a"})

    def add_ten(i: int) -> None:
        with ObjectStore(redis.Redis.from_url(redis_url), settings) as mine:
            for j in range(10):
                assert mine.add_trigger("orders", 0, 1, "on_update", 42, fn(f"{i}-{j}"))

    _in_threads(10, add_ten)
    assert update_targets(store) == {f"fn{i}-{j}" for i in range(10) for j in range(10)}
    assert_index_matches_triggers(client)


def test_concurrent_adds_and_removes_end_consistent(
    store: ObjectStore, client: redis.Redis, redis_url: str, settings: Settings
) -> None:
    store.create("orders", 0, 1, {42: b"a"})
    for i in range(10):
        store.add_trigger("orders", 0, 1, "on_update", 42, fn(f"old{i}"))

    def edit(i: int) -> None:
        with ObjectStore(redis.Redis.from_url(redis_url), settings) as mine:
            assert mine.add_trigger("orders", 0, 1, "on_update", 42, fn(f"new{i}"))
            assert mine.remove_trigger("orders", 0, 1, "on_update", 42, fn(f"old{i}"))
            assert mine.add_trigger("orders", 0, 1, "on_delete", 42, fn(f"del{i}"))

    _in_threads(10, edit)
    assert update_targets(store) == {f"fnnew{i}" for i in range(10)}
    ev = store.get_triggers("orders", 0, 1)
    assert {t.fn_id for t in ev.data_trigger[42].on_delete} == {f"fndel{i}" for i in range(10)}
    assert_index_matches_triggers(client)


def test_concurrent_async_adds_keep_every_target(redis_url: str, settings: Settings) -> None:
    async def main() -> set[str]:
        async with AsyncObjectStore(redis.asyncio.Redis.from_url(redis_url), settings) as store:
            await store.create("orders", 0, 1, {42: b"a"})
            added = await asyncio.gather(
                *(store.add_trigger("orders", 0, 1, "on_update", 42, fn(i)) for i in range(50))
            )
            assert all(added)
            ev = await store.get_triggers("orders", 0, 1)
            return {t.fn_id for t in ev.data_trigger[42].on_update}

    assert asyncio.run(main()) == {f"fn{i}" for i in range(50)}


def cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_all(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        out.append((p.returncode, stdout, stderr))
    return out


def test_parallel_cli_adds_and_removes_are_atomic(
    store: ObjectStore, client: redis.Redis, redis_url: str
) -> None:
    store.create("orders", 0, 1, {42: b"a"})
    url = ["--redis-url", redis_url]
    adds = run_all(
        [cli("triggers", "add", "orders", "0", "1", "on_update", "42", f"svc/0/fn{i}", *url)
         for i in range(10)]
    )  # fmt: skip
    assert all(code == 0 and "added" in out for code, out, _ in adds), adds
    assert update_targets(store) == {f"fn{i}" for i in range(10)}
    mixed = run_all(
        [cli("triggers", "remove", "orders", "0", "1", "on_update", "42", f"svc/0/fn{i}", *url)
         for i in range(5)]
        + [cli("triggers", "add", "orders", "0", "1", "on_complete", "pay", f"svc/0/fn{i}", *url)
           for i in range(5)]
    )  # fmt: skip
    assert all(code == 0 for code, _, _ in mixed), mixed
    ev = store.get_triggers("orders", 0, 1)
    assert {t.fn_id for t in ev.data_trigger[42].on_update} == {f"fn{i}" for i in range(5, 10)}
    assert {t.fn_id for t in ev.func_trigger["pay"].on_complete} == {f"fn{i}" for i in range(5)}
    assert_index_matches_triggers(client)


def test_cli_add_of_a_present_target_and_remove_of_a_missing_one(
    store: ObjectStore, redis_url: str
) -> None:
    store.create("orders", 0, 1, {42: b"a"})
    args = ["orders", "0", "1", "on_update", "42", "svc/0/fn1", "--redis-url", redis_url]
    [(code, out, _)] = run_all([cli("triggers", "add", *args)])
    assert (code, out) == (0, "added on_update 42 -> svc/0/fn1\n")
    [(code, out, _)] = run_all([cli("triggers", "add", *args)])
    assert (code, out) == (0, "already there: on_update 42 -> svc/0/fn1\n")
    [(code, out, _)] = run_all([cli("triggers", "remove", *args)])
    assert (code, out) == (0, "removed on_update 42 -> svc/0/fn1\n")
    [(code, out, err)] = run_all([cli("triggers", "remove", *args)])
    assert code == 1 and err == "Error: no on_update trigger of 42 targets svc/0/fn1\n"
    assert update_targets(store) == set()


def test_a_remove_with_other_options_says_what_the_object_has(
    store: ObjectStore, redis_url: str
) -> None:
    from click.testing import CliRunner

    from oprc_redis_events.cli.main import main

    store.create("orders", 0, 1, {"position": b"a"})
    base = ["triggers", "add", "orders", "0", "1", "on_update", "position", "tracker/0/moved"]
    runner = CliRunner()
    added = runner.invoke(
        main, [*base, "--coalesce-ms", "200", "--include-old", "--redis-url", redis_url]
    )
    assert added.exit_code == 0, added.output
    remove = ["triggers", "remove", *base[2:], "--redis-url", redis_url]
    result = runner.invoke(main, [*remove, "--coalesce-ms", "200"])
    assert result.exit_code == 1
    assert "with these options; it has tracker/0/moved with req_options" in result.output
    assert "'oprc.coalesce_ms': '200', 'oprc.include_old': 'true'" in result.output
    result = runner.invoke(main, [*remove, "--coalesce-ms", "200", "--include-old"])
    assert result.exit_code == 0, result.output
    gone = runner.invoke(main, [*remove, "--coalesce-ms", "200", "--include-old"])
    assert gone.output == "Error: no on_update trigger of position targets tracker/0/moved\n"
