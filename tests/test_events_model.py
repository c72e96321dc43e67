"""Random sequences of writes produce exactly the events of a reference model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oprc_redis_events import ObjectExistsError, ObjectNotFoundError, ObjectStore, Settings
from oprc_redis_events.dev.servers import RedisServer

from .helpers import events, watch_all

KEYS: list[int | str] = [1, 2, "a", "b"]
WATCHED = {"1", "a", "b"}  # field 2 has no trigger: its changes must not be queued
VALUES = st.sampled_from([b"x", b"y", b"", b"\x00\xff"])
FIELDS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4)
OPS = st.one_of(
    st.tuples(st.sampled_from(["create", "update", "upsert", "replace"]), FIELDS),
    st.tuples(st.just("delete_fields"), st.lists(st.sampled_from(KEYS), max_size=4, unique=True)),
    st.tuples(st.just("delete"), st.none()),
)


@dataclass
class Model:
    exists: bool = False
    watched: set[str] = field(default_factory=set)
    fields: dict[str, bytes] = field(default_factory=dict)

    def apply(
        self, op: str, arg: Any
    ) -> tuple[type[Exception] | None, list[tuple[str, str, bytes | None]]]:
        if op == "create" and self.exists:
            return ObjectExistsError, []
        if op in ("update", "delete_fields") and not self.exists:
            return ObjectNotFoundError, []
        out: list[tuple[str, str, bytes | None]] = []
        if op == "delete":
            out = [("DELETE", k, None) for k in self.fields]
            watched = self.watched
            self.__init__()  # type: ignore[misc]
            return None, [e for e in out if e[1] in watched]
        if op == "create":
            self.exists, self.watched = True, set(WATCHED)
        if op == "delete_fields":
            for key in map(str, arg):
                if key in self.fields:
                    out.append(("DELETE", key, None))
                    del self.fields[key]
        else:
            given_ = {str(k): v for k, v in arg.items()}
            for key, value in given_.items():
                if key not in self.fields:
                    out.append(("CREATE", key, value))
                elif self.fields[key] != value:
                    out.append(("UPDATE", key, value))
                self.fields[key] = value
            if op == "replace":
                for key in [k for k in self.fields if k not in given_]:
                    out.append(("DELETE", key, None))
                    del self.fields[key]
            if given_:
                self.exists = True
        return None, [e for e in out if e[1] in self.watched]


@pytest.fixture(scope="module")
def model_store() -> Iterator[ObjectStore]:
    with RedisServer() as server:
        store = ObjectStore(redis.Redis.from_url(server.url), Settings.from_env({}))
        yield store
        store.close()


def run(store: ObjectStore, op: str, arg: Any) -> None:
    if op == "create":
        store.create("orders", 0, 1, arg, event=watch_all([1, "a", "b"]))
    elif op == "delete":
        store.delete("orders", 0, 1)
    elif op == "delete_fields":
        store.delete_fields("orders", 0, 1, arg)
    else:
        getattr(store, op)("orders", 0, 1, arg)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(OPS, min_size=1, max_size=12))
def test_events_equal_the_reference_model(
    model_store: ObjectStore, ops: list[tuple[str, Any]]
) -> None:
    client = model_store.client
    client.flushdb()
    model = Model()
    for op, arg in ops:
        expected_error, expected = model.apply(op, arg)
        last = client.xrevrange("oprc:{orders:0}:outbox", count=1)
        after = last[0][0].decode() if last else "-"
        if expected_error is not None:
            with pytest.raises(expected_error):
                run(model_store, op, arg)
        else:
            run(model_store, op, arg)
        got = events(client, after=after)
        assert sorted(got, key=repr) == sorted(expected, key=repr), (op, arg)
        record = model_store.get("orders", 0, 1)
        if model.exists:
            assert record is not None
            assert {str(k): v for k, v in record.entries.items()} == model.fields
        else:
            assert record is None
