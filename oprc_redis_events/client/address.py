"""Where a redis-py client connects, for reprs: its real host, port and database (or socket
path), never its credentials."""

from __future__ import annotations

from typing import Any

__all__ = ["client_address"]


def client_address(client: Any) -> str | None:
    """``redis://HOST:PORT/DB`` (``unix://PATH?db=DB``) of ``client``'s connections, the
    seed node of a cluster client, or ``None`` when the client does not say."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if isinstance(kwargs, dict):
        db = kwargs.get("db", 0)
        if kwargs.get("path"):
            return f"unix://{kwargs['path']}?db={db}"
        host, port = _host(kwargs.get("host", "localhost")), kwargs.get("port", 6379)
        return f"{_scheme(pool)}://{host}:{port}/{db}"
    node = getattr(client, "get_default_node", None)
    if callable(node):
        seed = node()
        if seed is not None:
            return f"redis://{_host(seed.host)}:{seed.port} (cluster)"
    return None


def _scheme(pool: Any) -> str:
    cls = getattr(pool, "connection_class", None)
    return "rediss" if cls is not None and "SSL" in cls.__name__ else "redis"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
