"""Bad input at the API is an OprcEventsError naming what was wrong, never a foreign error:
text that is not encodable UTF-8 (lone surrogates), a write context out of range."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import redis

from oprc_redis_events import (
    EventedRedis,
    InvalidIdError,
    InvalidValueError,
    ObjectStore,
)

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]
BAD = "a\udcff"  # a lone surrogate: a str that has no UTF-8 encoding

STORE_CALLS: dict[str, tuple[Callable[[ObjectStore], Any], type[Exception], str]] = {
    "get-cls": (lambda s: s.get(BAD, 0, 1), InvalidIdError, "cls_id"),
    "get-oid": (lambda s: s.get("orders", 0, BAD), InvalidIdError, "object_id"),
    "create-field": (lambda s: s.create("orders", 0, 1, {BAD: b"x"}), InvalidIdError, "field"),
    "create-value": (lambda s: s.create("orders", 0, 1, {42: BAD}), InvalidValueError, "42"),
    "upsert-cls": (lambda s: s.upsert(BAD, 0, 1, {42: b"x"}), InvalidIdError, "cls_id"),
    "upsert-value": (lambda s: s.upsert("orders", 0, 1, {"f": BAD}), InvalidValueError, "'f'"),
    "delete-field": (lambda s: s.delete_fields("orders", 0, 1, [BAD]), InvalidIdError, "field"),
}


@pytest.mark.parametrize("name", sorted(STORE_CALLS))
def test_text_that_is_not_utf8_is_refused_naming_it(store: ObjectStore, name: str) -> None:
    call, error, named = STORE_CALLS[name]
    store.upsert("orders", 0, 1, {42: b"kept"})
    with pytest.raises(error, match="UTF-8") as info:
        call(store)
    assert named in str(info.value)
    record = store.get("orders", 0, 1)
    assert record is not None and record.entries == {42: b"kept"}


@pytest.mark.parametrize(
    "target", [b"svc\xff/0/fn", b"svc/0/f\xff", b"svc/0/objects/o\xff/fn", b"svc/0/fn"]
)
def test_a_trigger_target_that_is_not_utf8_is_refused_by_the_cli(
    redis_url: str, store: ObjectStore, target: bytes
) -> None:
    """Command-line arguments that are not UTF-8 reach Python as lone surrogates."""
    store.create("orders", 0, 1, {42: b"x"})
    args = [*CLI, "triggers", "add", "orders", "0", "1", "on_update", "42", target]
    if target == b"svc/0/fn":
        args += ["--option", b"k=v\xff"]
    out = subprocess.run(
        [*args, "--redis-url", redis_url], capture_output=True, timeout=60, input=b""
    )
    err = out.stderr.decode("utf-8", "backslashreplace")
    assert out.returncode == 1 and "Traceback" not in err, err
    assert err.startswith("Error: ") and "not valid UTF-8" in err and err.count("\n") == 1, err
    assert len(store.get_triggers("orders", 0, 1).data_trigger) == 0


@pytest.mark.parametrize("part", ["key", "field", "value"])
def test_the_wrapper_refuses_text_that_is_not_utf8(redis_url: str, part: str) -> None:
    args = {"key": "oprc:{orders:0}:obj:1", "field": "42", "value": "x"}
    args[part] = args[part] + BAD
    error = InvalidValueError if part == "value" else InvalidIdError
    with EventedRedis(redis.Redis.from_url(redis_url)) as r:
        with pytest.raises(error, match="UTF-8"):
            r.hset(args["key"], args["field"], args["value"])
        assert r.client.keys("oprc:*") == []


@pytest.mark.parametrize(
    ("depth", "traceparent", "message"),
    [
        (-1, None, "depth -1 is outside 0..9223372036854775807"),
        (2**63, None, "is outside 0..9223372036854775807"),
        (2**70, None, "is outside"),
        ("a", None, "depth must be an int, got str"),
        (1.5, None, "depth must be an int, got float"),
        (True, None, "depth must be an int, got bool"),
        (0, "not-a-traceparent", "is not a W3C traceparent"),
        (0, "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "is not a W3C traceparent"),
        (0, 42, "traceparent must be a str or None"),
    ],
)
def test_with_context_refuses_a_depth_or_traceparent_out_of_range(
    store: ObjectStore, depth: Any, traceparent: Any, message: str
) -> None:
    with pytest.raises(InvalidValueError, match=r"depth|traceparent") as info:
        store.with_context(depth=depth, traceparent=traceparent)
    assert message in str(info.value)


def test_with_context_takes_a_valid_one(store: ObjectStore) -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    bound = store.with_context(depth=2**63 - 1, traceparent=tp)
    assert (bound.depth, bound.traceparent) == (2**63 - 1, tp)


def test_a_store_shows_its_client_s_address_never_its_password() -> None:
    import redis.asyncio

    from oprc_redis_events import AsyncObjectStore

    cases = [
        (redis.Redis(port=23452, password="s3cret"), "'redis://localhost:23452/0'"),
        (redis.Redis(unix_socket_path="/tmp/r.sock", db=3), "'unix:///tmp/r.sock?db=3'"),
        (redis.Redis.from_url("rediss://u:s3cret@h:1/2"), "'rediss://h:1/2'"),
    ]
    for client, shown in cases:
        assert repr(ObjectStore(client)) == f"ObjectStore({shown}, depth=0)"
        client.close()
    aio = AsyncObjectStore(redis.asyncio.Redis(host="::1", port=7, db=1, password="s3cret"))
    assert repr(aio) == "AsyncObjectStore('redis://[::1]:7/1', depth=0)"
