# Generated from aio/batch.py by scripts/unasync.py (make unasync): do not edit.
"""``WriteBatch``: many writes sent together, grouped per partition (asyncio).

``store.batch()`` queues writes (``create``, ``update``, ``upsert``, ``replace``,
``set_field``, ``delete_fields``, ``delete_field``, ``delete``), validating each at once,
and ``execute()`` sends them: consecutive writes of one partition as one call of the write
script (see :mod:`~oprc_redis_events.client.batch_core`), every call in one buffer
(:mod:`~oprc_redis_events.lua.direct`; a pipeline where that does not apply).

Its synchronous twin (``client/sync_generated/batch.py``) is generated from this file by
``scripts/unasync.py``; edit this one and run ``make unasync``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import redis

from ...connect.cluster import is_cluster
from ...errors import OprcEventsError, WriteOutcomeUnknownError
from ...protocol.keys import PARTITIONS_KEY, FieldKey, ObjectId
from .. import core as ops
from ..batch_core import batch_call, batch_replies, groups
from ..core import ObjectRef, Value, WriteResult
from ..redis_errors import refused, write_errors

if TYPE_CHECKING:
    from .store import ObjectStore

__all__ = ["WriteBatch"]

#: what a batch's write gives back: a ``WriteResult``, or for ``delete`` whether it existed
Outcome = WriteResult | bool


class WriteBatch:
    """Writes queued on ``store``; :meth:`execute` sends them (see the module docstring).

    Used as ``with store.batch() as batch:``, the writes are sent when the block
    ends without an exception, and their outcomes are in :attr:`results`.
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.calls: list[ops.ScriptCall] = []
        self.results: list[Outcome | OprcEventsError] = []

    def __len__(self) -> int:
        return len(self.calls)

    def __enter__(self) -> WriteBatch:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.execute()
        self.calls.clear()

    def _add(
        self, cls_id: str, partition_id: int, object_id: ObjectId, mode: str, **kw: Any
    ) -> None:
        ref = ObjectRef.of(cls_id, partition_id, object_id)
        self.calls.append(self.store.build(ref, mode, **kw))

    def create(
        self,
        cls_id: str,
        partition_id: int,
        object_id: ObjectId,
        entries: Mapping[FieldKey, Value] | None = None,
        *,
        event: Any = None,
    ) -> None:
        """Queue :meth:`ObjectStore.create`."""
        self._add(
            cls_id, partition_id, object_id, "create", entries=entries, event=event,
            replace_triggers=True,
        )  # fmt: skip

    def update(
        self, cls_id: str, partition_id: int, object_id: ObjectId, entries: Mapping[FieldKey, Value]
    ) -> None:
        """Queue :meth:`ObjectStore.update`."""
        self._add(cls_id, partition_id, object_id, "update", entries=entries)

    def upsert(
        self, cls_id: str, partition_id: int, object_id: ObjectId, entries: Mapping[FieldKey, Value]
    ) -> None:
        """Queue :meth:`ObjectStore.upsert`."""
        self._add(cls_id, partition_id, object_id, "upsert", entries=entries)

    def replace(
        self, cls_id: str, partition_id: int, object_id: ObjectId, entries: Mapping[FieldKey, Value]
    ) -> None:
        """Queue :meth:`ObjectStore.replace`."""
        self._add(cls_id, partition_id, object_id, "replace", entries=entries)

    def set_field(
        self, cls_id: str, partition_id: int, object_id: ObjectId, key: FieldKey, value: Value
    ) -> None:
        """Queue :meth:`ObjectStore.set_field`."""
        self.update(cls_id, partition_id, object_id, {key: value})

    def delete_fields(
        self, cls_id: str, partition_id: int, object_id: ObjectId, keys: Iterable[FieldKey]
    ) -> None:
        """Queue :meth:`ObjectStore.delete_fields`."""
        self._add(cls_id, partition_id, object_id, "delete_fields", delete_keys=keys)

    def delete_field(
        self, cls_id: str, partition_id: int, object_id: ObjectId, key: FieldKey
    ) -> None:
        """Queue :meth:`ObjectStore.delete_field`."""
        self.delete_fields(cls_id, partition_id, object_id, [key])

    def delete(self, cls_id: str, partition_id: int, object_id: ObjectId) -> None:
        """Queue :meth:`ObjectStore.delete` (its outcome: whether the object existed)."""
        self._add(cls_id, partition_id, object_id, "delete")

    def execute(self, raise_on_error: bool = True) -> list[Outcome | OprcEventsError]:
        """Send the queued writes; their outcomes in order (also kept in :attr:`results`):
        a ``WriteResult`` (``delete``: a bool) or, with ``raise_on_error=False``, the error a
        write raised alone (``ObjectNotFoundError``, ``CorruptedStateError``...).  With
        ``raise_on_error`` the first such error is raised, after every write was sent."""
        calls, self.calls = self.calls, []
        self.store.check_access()
        runs = groups(calls)
        with write_errors(f"batch of {len(calls)} writes"):
            replies = self._send(calls, runs)
        self.results = [_outcome(call, reply) for call, reply in zip(calls, replies, strict=True)]
        self._register(calls)
        if raise_on_error:
            for result in self.results:
                if isinstance(result, OprcEventsError):
                    raise result
        return self.results

    def _send(self, calls: list[ops.ScriptCall], runs: list[list[int]]) -> list[Any]:
        client: Any = self.store.client
        script = self.store._write
        if is_cluster(client):  # one call at a time: each run is in one slot
            sent = self._each(script, calls, runs)
        elif hasattr(script, "many"):  # every call in one buffer, off redis-py's pipeline
            sent = script.many([_call_args([calls[i] for i in run]) for run in runs])
        else:
            pipe: Any = client.pipeline(transaction=False)
            for run in runs:
                self._one(script, [calls[i] for i in run], pipe)
            sent = pipe.execute(raise_on_error=False)
        return _flat(runs, sent)

    def _each(self, script: Any, calls: list[ops.ScriptCall], runs: list[list[int]]) -> list[Any]:
        """Cluster: the runs one call at a time; a call that gets no reply after others were
        applied leaves the batch's outcome unknown (those are registered first)."""
        sent: list[Any] = []
        for run in runs:
            try:
                sent.append(self._one(script, [calls[i] for i in run], self.store.client))
            except (redis.ConnectionError, redis.TimeoutError) as err:
                if not sent:
                    raise
                done = [calls[i] for run in runs[: len(sent)] for i in run]
                self.results = [
                    _outcome(c, r) for c, r in zip(done, _flat(runs, sent), strict=True)
                ]
                self._register(done)
                raise WriteOutcomeUnknownError(
                    f"batch of {len(calls)} writes: {len(done)} were applied, then no reply from "
                    f"Redis ({err}), so the others may or may not have been: read the objects' "
                    "versions (get) before writing again"
                ) from err
        return sent

    @staticmethod
    def _one(script: Any, calls: list[ops.ScriptCall], client: Any) -> Any:
        keys, args = _call_args(calls)
        try:
            return script(keys=keys, args=args, client=client)
        except redis.ResponseError as err:
            return err

    def _register(self, calls: list[ops.ScriptCall]) -> None:
        """Record the partitions that got their first outbox entry (as single writes do)."""
        known = self.store.known_partitions
        for call, result in zip(calls, self.results, strict=True):
            member = call.target.keys.member
            if isinstance(result, WriteResult) and result.entry_id and member not in known:
                self.store.client.sadd(PARTITIONS_KEY, member)
                known.add(member)


def _call_args(calls: list[ops.ScriptCall]) -> tuple[list[str], list[Any]]:
    """The keys and arguments of one script call for a run of ``calls``."""
    return (calls[0].keys, calls[0].args) if len(calls) == 1 else batch_call(calls)


def _flat(runs: list[list[int]], sent: list[Any]) -> list[Any]:
    """Each write's reply, from each call's reply (a batch call answers for its run)."""
    replies: list[Any] = []
    for run, reply in zip(runs, sent, strict=False):  # sent may stop short of runs
        replies += batch_replies(reply, len(run)) if len(run) > 1 else [reply]
    return replies


def _outcome(call: ops.ScriptCall, reply: Any) -> Outcome | OprcEventsError:
    try:
        if isinstance(reply, redis.ResponseError):
            raise refused(f"{call.mode} {call.target.describe()}", reply)
        if isinstance(reply, Exception):
            raise reply
        result = ops.parse_write(call, reply)
    except OprcEventsError as err:
        return err
    return result.existed if call.mode == "delete" else result
