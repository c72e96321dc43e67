"""Start-up permission checks: may this Redis user do what its role needs?

Before doing anything, the worker (role ``worker``, or ``capture`` with keyspace capture)
and the store (role ``writer``, before its first write) ask Redis, as themselves, whether
each command of their role would be allowed on keys of the layout: ``ACL WHOAMI`` for the
user, then one pipelined ``ACL DRYRUN <user> <command> <args>`` per command of
:func:`~oprc_redis_events.protocol.acl.checks`.  What is missing is reported at once, by
command and key pattern, with the rules to give (:class:`PermissionDeniedError`), instead of
a ``NOPERM`` in the middle of the work.  Where Redis has no ``ACL DRYRUN`` (before 7.0) or
the user may not run it, and on a cluster, the check is skipped with a debug log line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio

from ..errors import PermissionDeniedError
from ..protocol.acl import Check, checks, sample_key
from ..protocol.keys import PREFIX, as_text

__all__ = [
    "check_access",
    "check_access_async",
    "check_worker_async",
    "database",
    "dryruns",
    "is_cluster",
    "verdict",
]

log = logging.getLogger("oprc_redis_events.permissions")

#: commands whose first argument is a subcommand (named with it: ``XGROUP CREATE``)
_CONTAINERS = {"XGROUP", "XINFO", "SCRIPT", "CONFIG"}


def is_cluster(client: Any) -> bool:
    return isinstance(client, (redis.RedisCluster, redis.asyncio.RedisCluster))


def database(client: Any) -> int:
    """The database a (non-cluster) client selects."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    return int(kwargs.get("db", 0) or 0)


def dryruns(role: str, user: str, db: int = 0) -> list[tuple[str, ...]]:
    """The ``ACL DRYRUN`` commands checking ``role`` for ``user``."""
    return [("ACL", "DRYRUN", user, *(sample_key(a) for a in c)) for c in checks(role, db)]


def _described(check: Check) -> str:
    words = 2 if check[0] in _CONTAINERS else 1
    name = " ".join(check[:words])
    keys = [a for a in check[words:] if a.startswith((f"{PREFIX}:", "__keyspace@"))]
    return f"{name} on {', '.join(keys)}" if keys else name


def skipped(what: str, err: object) -> None:
    log.debug("permission check of %s skipped: %s", what, err)


def verdict(
    role: str, user: str, replies: Sequence[Any], db: int = 0, along: Sequence[str] = ()
) -> bool:
    """Raise :class:`PermissionDeniedError` naming what ``user`` may not do of ``role``
    (whose rules it needs ``along`` other roles'); ``False`` when the check could not be
    made (``ACL DRYRUN`` missing or refused)."""
    missing: list[str] = []
    why = ""
    for check, reply in zip(checks(role, db), replies, strict=True):
        if isinstance(reply, Exception):
            if isinstance(reply, redis.ResponseError) and "dryrun" in str(reply).lower():
                skipped(f"role {role}", reply)  # no ACL DRYRUN here, or not for this user
                return False
            continue  # a command this Redis does not know: nothing to check
        text = as_text(reply)
        if text != "OK":
            missing.append(_described(check))
            why = why or text
    if missing:
        roles = dict.fromkeys((*along, role))
        flags = " ".join(f"--role {r}" for r in roles)
        db_flag = f" --db {db}" if "capture" in roles and db else ""
        raise PermissionDeniedError(
            f"Redis user {user!r} may not run {'; '.join(missing)} (ACL DRYRUN: {why}), "
            f"which the {role} role needs: give it the role's rules, e.g. `redis-cli ACL "
            f"SETUSER {user} on '>PASSWORD' $(oprc-redis-events acl {flags}{db_flag})`"
        )
    return True


def _skip_cluster(client: Any, role: str) -> bool:
    if is_cluster(client):
        skipped(f"role {role}", "not made on a Redis Cluster")
        return True
    return False


def check_access(client: redis.Redis, role: str) -> None:
    """Check ``role``'s permissions as ``client``'s user; raise :class:`PermissionDeniedError`.

    Skipped (debug log) on a cluster and where ``ACL DRYRUN`` or ``ACL WHOAMI`` is missing
    or refused; a connection error propagates."""
    if _skip_cluster(client, role):
        return
    db = database(client)
    try:
        user = as_text(client.execute_command("ACL", "WHOAMI"))  # type: ignore[no-untyped-call]
        pipe: Any = client.pipeline(transaction=False)
        for command in dryruns(role, user, db):
            pipe.execute_command(*command)
        replies = pipe.execute(raise_on_error=False)
    except redis.ResponseError as err:
        skipped(f"role {role}", err)
        return
    verdict(role, user, replies, db)


async def check_access_async(
    client: redis.asyncio.Redis, role: str, along: Sequence[str] = ()
) -> None:
    """:func:`check_access` for an asyncio client (``along``: see :func:`verdict`)."""
    if _skip_cluster(client, role):
        return
    db = database(client)
    try:
        user = as_text(await client.execute_command("ACL", "WHOAMI"))  # type: ignore[no-untyped-call]
        pipe: Any = client.pipeline(transaction=False)
        for command in dryruns(role, user, db):
            pipe.execute_command(*command)
        replies = await pipe.execute(raise_on_error=False)
    except redis.ResponseError as err:
        skipped(f"role {role}", err)
        return
    verdict(role, user, replies, db, along)


async def check_worker_async(client: redis.asyncio.Redis, roles: Sequence[str]) -> None:
    """:func:`check_access_async` of each of ``roles`` at a worker's start: skipped when
    Redis cannot be reached yet (the worker waits for it and meets any missing right then);
    refused credentials are the user's mistake, raised at once."""
    for role in roles:
        try:
            await check_access_async(client, role, along=roles)
        except redis.AuthenticationError:
            raise
        except (redis.ConnectionError, redis.TimeoutError) as err:
            skipped(f"role {role}", err)
            return
