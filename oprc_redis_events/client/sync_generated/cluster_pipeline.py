# Generated from aio/cluster_pipeline.py by scripts/unasync.py (make unasync): do not edit.
"""``EventedClusterPipeline``: the wrapper's pipeline on a Redis Cluster (asyncio).

Commands are classified as in any wrapper pipeline (routed through the write path, refused,
or plain) and queued; ``execute()`` sends them grouped per owning primary, one pipeline per
node on that node's own connection, and returns what redis-py would, in the caller's order
(see :mod:`~oprc_redis_events.client.cluster_batch`).  Each write stays one script call in
its object's slot.  A node that does not know a script is sent ``SCRIPT LOAD`` first;
a command refused with MOVED, ASK, TRYAGAIN, CLUSTERDOWN or NOSCRIPT is sent again
through the cluster client, which follows the redirection.  As redis-py's own cluster
pipeline, it is not a transaction: commands for different nodes run independently.

Its synchronous twin (``client/sync_generated/cluster_pipeline.py``) is generated from this
file by ``scripts/unasync.py``: edit this one and run ``make unasync``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import RedisClusterException

from ...connect.cluster import (
    initialized,
    node_of_slot,
    response_callbacks,
    send_to_node,
    slot_of,
)
from ..cluster_batch import CommandQueue, Queued, must_retry, runs, script_parts
from ..wrapper_core import plan_command
from ..wrapper_proxy import Intercepted, command_attribute

if TYPE_CHECKING:
    from .wrapper import EventedRedis

__all__ = ["EventedClusterPipeline"]

Scripts = dict[str, Any]


class EventedClusterPipeline:
    """Queues commands for ``owner``'s cluster client; ``execute()`` sends them per node.
    Other attributes are the cluster client's own."""

    def __init__(self, owner: EventedRedis) -> None:
        self.owner = owner
        self.client: Any = owner.client
        self._queue = CommandQueue(response_callbacks(owner.client))
        self._queued = Intercepted(owner.store, self._queue, owner._expire_script)

    def __getattr__(self, name: str) -> Any:
        return command_attribute(self, self.client, name)

    def __len__(self) -> int:
        return self._queued.size

    def __bool__(self) -> bool:
        return True

    def __enter__(self) -> EventedClusterPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()

    def reset(self) -> None:
        self._queued.clear()
        self._queue.clear()

    def execute_command(self, *args: Any, **options: Any) -> EventedClusterPipeline:
        """Queue one command: routed through the write path, refused, or plain."""
        plan = plan_command(args, self.client)
        if plan is not None:
            self._queued.queue(plan)
        else:
            self._queued.flush()
            self._queue.execute_command(*args, **options)
            self._queued.plain()
        return self

    # The cluster client splits these across slots through a pipeline of its own: here
    # they are queued as one command each, as in redis-py's cluster pipeline.
    def delete(self, *names: Any) -> EventedClusterPipeline:
        return self.execute_command("DEL", *names)

    def unlink(self, *names: Any) -> EventedClusterPipeline:
        return self.execute_command("UNLINK", *names)

    def exists(self, *names: Any) -> EventedClusterPipeline:
        return self.execute_command("EXISTS", *names)

    def touch(self, *names: Any) -> EventedClusterPipeline:
        return self.execute_command("TOUCH", *names)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send the queued commands; their results in order (the first error is raised
        when ``raise_on_error``, after every command was sent)."""
        self._queued.flush()
        commands = list(self._queue.commands)
        scripts = {script.sha: script for script in self._queue.scripts}
        self._queue.clear()
        try:
            replies = self._send(commands, scripts)
        except BaseException:
            self._queued.clear()
            raise
        results = self._queued.results(replies)
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    def _send(self, commands: list[Queued], scripts: Scripts) -> list[Any]:
        initialized(self.client)
        replies: list[Any] = [None] * len(commands)
        slots = [slot_of(self.client, c.args) for c in commands]
        for run in runs(slots):
            if slots[run[0]] is None:
                replies[run[0]] = self._through_cluster(commands[run[0]], scripts)
            else:
                self._send_run(run, slots, commands, scripts, replies)
        return replies

    def _send_run(
        self,
        run: list[int],
        slots: list[int | None],
        commands: list[Queued],
        scripts: Scripts,
        replies: list[Any],
    ) -> None:
        by_node: dict[str, tuple[Any, list[int]]] = {}
        for i in run:
            node = node_of_slot(self.client, slots[i])  # type: ignore[arg-type]
            by_node.setdefault(node.name, (node, []))[1].append(i)
        for node, positions in by_node.values():
            batch = [(commands[i].args, commands[i].options) for i in positions]
            loads = self.owner.node_scripts.to_load(node.name, commands, positions, scripts)
            got = send_to_node(self.client, node, loads + batch)
            self.owner.node_scripts.loaded(node.name, loads, got[: len(loads)])
            for i, reply in zip(positions, got[len(loads) :], strict=True):
                replies[i] = reply
        for i in run:  # in the caller's order
            if must_retry(replies[i]):
                replies[i] = self._through_cluster(commands[i], scripts)

    def _through_cluster(self, command: Queued, scripts: Scripts) -> Any:
        """Send one command through the cluster client (redirections followed, a script
        loaded where it is missing); its reply, or the error it got."""
        parts = script_parts(command)
        try:
            if parts is not None and parts[0] in scripts:
                sha, keys, args = parts
                return scripts[sha](keys=keys, args=args, client=self.client)
            return self.client.execute_command(*command.args, **command.options)
        except (redis.RedisError, RedisClusterException) as err:
            return err
