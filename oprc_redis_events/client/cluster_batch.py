"""How a wrapper's pipeline on a Redis Cluster is cut into per-node batches (no I/O).

redis-py's cluster pipeline refuses EVALSHA, and one round trip per script call would
waste the pipeline.  So a cluster pipeline queues its commands in a :class:`CommandQueue`
(which offers the surface :class:`~.wrapper_proxy.Intercepted` queues on) and, on
``execute()``, sends them in :func:`runs`: the commands in a run that each stay in one slot
go out grouped by the primary that owns their slot, one pipeline per node, each node's in
the caller's order; a command that names no key, or keys of several slots, is a run of its
own, sent through the cluster client (which knows where such a command goes).  A command a
node refuses as not (or not yet) its own (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) or whose
script it does not know (NOSCRIPT) did not run: :func:`must_retry` says so, and it is
sent again through the cluster client, which follows the redirection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import AskError, ClusterDownError, NoScriptError, TryAgainError

__all__ = ["CommandQueue", "NodeScripts", "Queued", "must_retry", "runs", "script_parts"]

#: one command to send: its arguments and redis-py options
Command = tuple[tuple[Any, ...], Mapping[str, Any]]

#: replies that mean a node did not run the command: send it again through the cluster
RETRY_ERRORS: tuple[type[Exception], ...] = (
    AskError,  # and MovedError, its subclass
    TryAgainError,
    ClusterDownError,
    NoScriptError,
)


@dataclass(frozen=True, slots=True)
class Queued:
    """One command of a cluster pipeline: its arguments and redis-py options."""

    args: tuple[Any, ...]
    options: Mapping[str, Any]


@dataclass
class CommandQueue:
    """The commands of a cluster pipeline, in the caller's order, and the scripts
    (redis-py ``Script`` objects) whose SHAs they call."""

    response_callbacks: Mapping[Any, Any]
    commands: list[Queued] = field(default_factory=list)
    scripts: set[Any] = field(default_factory=set)

    def execute_command(self, *args: Any, **options: Any) -> CommandQueue:
        options.pop("target_nodes", None)  # commands go where their slot is served
        self.commands.append(Queued(args, options))
        return self

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> CommandQueue:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def sadd(self, name: str, *values: Any) -> CommandQueue:
        return self.execute_command("SADD", name, *values)

    def clear(self) -> None:
        self.commands.clear()


def runs(slots: Sequence[int | None]) -> list[list[int]]:
    """The commands' positions cut into runs sent one after the other: consecutive
    commands with a slot share a run; a command without one (``None``) is a run alone."""
    out: list[list[int]] = []
    current: list[int] = []
    for i, slot in enumerate(slots):
        if slot is None:
            if current:
                out.append(current)
            out.append([i])
            current = []
        else:
            current.append(i)
    if current:
        out.append(current)
    return out


def must_retry(reply: Any) -> bool:
    """Whether a node's reply says it did not run the command (send it again)."""
    return isinstance(reply, RETRY_ERRORS)


def script_parts(command: Queued) -> tuple[str, list[Any], list[Any]] | None:
    """``(sha, keys, args)`` of an EVALSHA, ``None`` for any other command."""
    args = command.args
    name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    if name.upper() != "EVALSHA" or len(args) < 3:
        return None
    count = int(args[2])
    return str(args[1]), list(args[3 : 3 + count]), list(args[3 + count :])


@dataclass
class NodeScripts:
    """Which scripts each node was seen to load, so a batch loads a script on a node
    (``SCRIPT LOAD`` ahead of its calls, in the same pipeline) only the first time.  A node
    that loses them later (SCRIPT FLUSH, a restart) answers NOSCRIPT: those calls are
    retried, loading the script again."""

    known: set[tuple[str, str]] = field(default_factory=set)

    def to_load(
        self,
        node: str,
        commands: Sequence[Queued],
        positions: Sequence[int],
        scripts: Mapping[str, Any],
    ) -> list[tuple[tuple[Any, ...], Mapping[str, Any]]]:
        """``SCRIPT LOAD`` commands for the scripts the commands at ``positions`` call
        that ``node`` was not seen to load."""
        needed: dict[str, Any] = {}
        for i in positions:
            parts = script_parts(commands[i])
            if parts and parts[0] in scripts and (node, parts[0]) not in self.known:
                needed[parts[0]] = scripts[parts[0]]
        return [(("SCRIPT LOAD", script.script), {}) for script in needed.values()]

    def loaded(
        self,
        node: str,
        loads: Sequence[tuple[tuple[Any, ...], Mapping[str, Any]]],
        replies: Sequence[Any],
    ) -> None:
        """Note the scripts ``node`` loaded (a load that failed is tried again next time)."""
        for _, reply in zip(loads, replies, strict=True):
            if isinstance(reply, (str, bytes)):
                sha = reply.decode() if isinstance(reply, bytes) else reply
                self.known.add((node, sha))
