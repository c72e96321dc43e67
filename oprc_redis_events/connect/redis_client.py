"""The one place that turns settings into a Redis client, sync or asyncio.

Everything that talks to Redis (the stores, the wrapper helpers, the worker, capture, the
CLI and the demo) gets its client here, so a client option (a cluster client, TLS, a
timeout, credentials) is added once.  The URL takes redis-py's forms and query options
(``redis://``, ``rediss://`` with ``ssl_ca_certs=...``, ``ssl_certfile=...``,
``ssl_keyfile=...``, ``ssl_cert_reqs=...``, ``unix://``).  With ``cluster=True`` the URL
names one seed node of a Redis Cluster and the client is redis-py's ``RedisCluster``,
which discovers the other nodes and follows MOVED/ASK (with the seed's TLS options and
credentials on every node).

Credentials kept out of the URL (``OPRC_EVENTS_REDIS_USERNAME``,
``OPRC_EVENTS_REDIS_PASSWORD``, ``OPRC_EVENTS_REDIS_PASSWORD_FILE``, see
:meth:`Settings.redis_credentials`) are merged in here; a user name or password the URL
carries itself wins (redis-py lets the URL override keyword arguments).  A bare URL
(the demo's and the benchmarks' private servers) gets no credentials but its own.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.cluster

from ..config import Settings

__all__ = ["async_redis_client", "redis_client"]


def _options(target: Settings | str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the settings' credentials (a bare URL brings its own, if any)."""
    if isinstance(target, str):
        return options
    return {**target.redis_credentials(), **options}


def _cluster(target: Settings | str, cluster: bool | None) -> bool:
    if cluster is not None:
        return cluster
    return False if isinstance(target, str) else target.cluster


def _url(target: Settings | str) -> str:
    return target if isinstance(target, str) else target.redis_url


def redis_client(
    target: Settings | str, *, cluster: bool | None = None, **options: Any
) -> redis.Redis:
    """A sync client for ``target`` (settings, or a Redis URL), a cluster client when
    ``cluster`` (default: the settings' ``cluster``); ``options`` go to redis-py."""
    kwargs = _options(target, options)
    if _cluster(target, cluster):
        return redis.cluster.RedisCluster.from_url(_url(target), **kwargs)  # type: ignore[return-value]
    return redis.Redis.from_url(_url(target), **kwargs)


def async_redis_client(
    target: Settings | str, *, cluster: bool | None = None, **options: Any
) -> redis.asyncio.Redis:
    """An asyncio client for ``target``, as :func:`redis_client`."""
    kwargs = _options(target, options)
    if _cluster(target, cluster):
        return redis.asyncio.RedisCluster.from_url(_url(target), **kwargs)  # type: ignore[return-value]
    return redis.asyncio.Redis.from_url(_url(target), **kwargs)
