"""The cost of a condition (``req_options["oprc.when"]``) next to none.

``write_condition``: ``store.update`` of a field whose one target has a condition (the write
script then also copies the field's old value into the outbox entry) against the same update
with a plain target.  ``condition_eval``: one evaluation of a compiled CEL condition in the
worker (:func:`~oprc_redis_events.protocol.conditions.holds`) against the same comparison in
Python.
"""

from __future__ import annotations

import redis

from ..pb.oprc_data_pb2 import ObjectEvent, TriggerTarget
from ..protocol.conditions import holds
from ..protocol.keys import PartitionKeys
from .bench import CLASSES, Result, per_op_us
from .bench_write import _paired, _store

__all__ = ["condition_rows"]

WHEN = 'old == "pending" && new == "paid"'


def _watched(when: str | None) -> ObjectEvent:
    options = {"oprc.when": when} if when else {}
    ev = ObjectEvent()
    ev.data_trigger[1].on_update.append(
        TriggerTarget(cls_id="svc", partition_id=0, fn_id="f", req_options=options)
    )
    return ev


def condition_rows(client: redis.Redis, n: int) -> list[Result]:
    store, cls = _store(client), CLASSES["growth"]
    store.create(cls, 0, "plain", {1: b"0"}, event=_watched(None))
    store.create(cls, 0, "when", {1: b"0"}, event=_watched(WHEN))
    plain, ours = _paired(
        n,
        lambda i: store.update(cls, 0, "plain", {1: str(i).encode()}),
        lambda i: store.update(cls, 0, "when", {1: str(i).encode()}),
    )
    client.delete(PartitionKeys.of(cls, 0).outbox)
    values = {"old": "pending", "new": "paid"}
    evals = n * 20
    cel_us = per_op_us(evals, lambda _: holds(WHEN, values))
    old, new = values["old"], values["new"]
    native_us = per_op_us(evals, lambda _: old == "pending" and new == "paid")
    return [
        Result(
            "write_condition",
            "us/write",
            plain,
            ours,
            "store.update, one plain target",
            "store.update, one target with a condition (its old value carried)",
            "lower",
            "close to 1",
        ),
        Result(
            "condition_eval",
            "us/eval",
            native_us,
            cel_us,
            "the same comparison in Python",
            f"one CEL evaluation in the worker: {WHEN}",
            "lower",
            "",
        ),
    ]
