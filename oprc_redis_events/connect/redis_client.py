"""The one place that turns settings into a Redis client, sync or asyncio.

Everything that talks to Redis (the stores, the wrapper helpers, the worker, capture, the
CLI and the demo) gets its client here, so a client option (a cluster client, TLS, a
timeout) is added once.  The URL takes redis-py's forms and query options
(``redis://``, ``rediss://`` with ``ssl_ca_certs=...``, ``unix://``).  With
``cluster=True`` the URL names one seed node of a Redis Cluster and the client is
redis-py's ``RedisCluster``, which discovers the other nodes and follows MOVED/ASK.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.cluster

from ..config import Settings

__all__ = ["async_redis_client", "redis_client"]


def _url(target: Settings | str) -> str:
    return target if isinstance(target, str) else target.redis_url


def _cluster(target: Settings | str, cluster: bool | None) -> bool:
    if cluster is not None:
        return cluster
    return False if isinstance(target, str) else target.cluster


def redis_client(
    target: Settings | str, *, cluster: bool | None = None, **options: Any
) -> redis.Redis:
    """A sync client for ``target`` (settings, or a Redis URL), a cluster client when
    ``cluster`` (default: the settings' ``cluster``); ``options`` go to redis-py."""
    if _cluster(target, cluster):
        return redis.cluster.RedisCluster.from_url(_url(target), **options)  # type: ignore[return-value]
    return redis.Redis.from_url(_url(target), **options)


def async_redis_client(
    target: Settings | str, *, cluster: bool | None = None, **options: Any
) -> redis.asyncio.Redis:
    """An asyncio client for ``target``, as :func:`redis_client`."""
    if _cluster(target, cluster):
        return redis.asyncio.RedisCluster.from_url(_url(target), **options)  # type: ignore[return-value]
    return redis.asyncio.Redis.from_url(_url(target), **options)
