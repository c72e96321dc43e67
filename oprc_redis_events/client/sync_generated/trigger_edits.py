# Generated from aio/trigger_edits.py by scripts/unasync.py (make unasync): do not edit.
"""``add_trigger`` and ``remove_trigger`` of :class:`ObjectStore`.

One target is added to (or removed from) an object's trigger configuration atomically, by
optimistic concurrency: read the configuration, edit it, and write it through the write
script only if ``ev`` still holds what was read (the script compares); after a concurrent
edit, read it again.  Lua cannot decode an ``ObjectEvent``, so the edit itself is Python's.

Its synchronous twin (``client/sync_generated/trigger_edits.py``) is generated from this
file by ``scripts/unasync.py``: edit this one and run ``make unasync``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis

from ...pb.oprc_data_pb2 import TriggerTarget
from ...protocol.keys import FieldKey, ObjectId
from ...protocol.triggers import TargetEdit
from .. import core as ops
from ..core import ObjectRef
from ..redis_errors import redis_errors, write_errors

__all__ = ["TriggerEdits"]


class TriggerEdits:
    """The trigger edits of a store: it provides ``client``, ``build`` and ``call``."""

    client: redis.Redis

    def build(self, ref: ObjectRef, mode: str, **kw: Any) -> ops.ScriptCall:
        raise NotImplementedError

    def call(self, call: ops.ScriptCall) -> Any:
        raise NotImplementedError

    def add_trigger(
        self,
        cls_id: str,
        partition_id: int,
        object_id: ObjectId,
        event: str,
        key: FieldKey,
        target: TriggerTarget,
    ) -> bool:
        """Add ``target`` to the object's ``event`` trigger of ``key``, atomically: concurrent
        edits of the same object all take effect.  ``event`` is on_create, on_update,
        on_delete (``key``: a field key) or on_complete, on_error (``key``: a function id).
        Returns ``False`` (and changes nothing) when that target is already there."""
        edit = TargetEdit.of(event, key, target, add=True)
        return self._edit(ObjectRef.of(cls_id, partition_id, object_id), edit)

    def remove_trigger(
        self,
        cls_id: str,
        partition_id: int,
        object_id: ObjectId,
        event: str,
        key: FieldKey,
        target: TriggerTarget,
    ) -> bool:
        """Remove ``target`` (every copy of it) from the object's ``event`` trigger of ``key``,
        atomically as :meth:`add_trigger`; ``False`` when it was not there."""
        edit = TargetEdit.of(event, key, target, add=False)
        return self._edit(ObjectRef.of(cls_id, partition_id, object_id), edit)

    def _edit(self, ref: ObjectRef, edit: TargetEdit) -> bool:
        # Optimistic: read the configuration, edit it, and write it only if it is unchanged
        # (compared in write.lua); a concurrent edit makes us read it again.
        what = f"{'add' if edit.add else 'remove'} a trigger of {ref.describe()}"
        for _ in range(ops.EDIT_ATTEMPTS):
            with redis_errors(what):
                pipe = self.client.pipeline(transaction=True)
                pipe.type(ref.obj)
                pipe.type(ref.meta)
                pipe.hget(ref.meta, "ev")
                replies = pipe.execute(raise_on_error=False)
                event, current = ops.edited_triggers(ref, replies, edit)
            if event is None:
                return False
            call = self.build(
                ref, "set_triggers", event=event, replace_triggers=True, expect_triggers=current
            )
            with contextlib.suppress(ops.TriggersChanged), write_errors(what):
                ops.parse_write(call, self.call(call))
                return True
        raise ops.edit_conflict(ref)
