"""Redis URLs and secrets: what redis-py accepts in a URL, and how a URL is printed.

:func:`check_redis_url` refuses a URL redis-py cannot use (scheme, host, port, and query
parameters its connection class for the scheme does not take); :func:`redact_url` hides
every password redis-py would read from a URL; :func:`read_secret_file` reads a password
kept in a file.  Part of the base layer, beside :mod:`.config` which re-exports them.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from urllib.parse import parse_qs, unquote, urlparse

import redis.asyncio.connection as async_connection
import redis.connection as sync_connection
from redis.connection import parse_url

from .errors import ConfigError

__all__ = ["check_redis_url", "read_secret_file", "redact_url", "url_parameters"]

#: a query parameter of a Redis URL whose value is a secret (password=, ssl_password=)
_SECRET_PARAM = re.compile(r"password", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with every password redis-py would read from it replaced by ``***``: the
    userinfo's (``redis://user:pw@host``) and query parameters such as ``password=`` and
    ``ssl_password=`` (for logs, reprs and error messages)."""
    scheme, sep, rest = url.partition("://") if "://" in url else ("", "", url)
    query_at = rest.find("?") if "?" in rest else len(rest)
    at = rest.rfind("@", 0, query_at)  # a password may hold an unescaped '/' or '#'
    if at >= 0 and ":" in rest[:at]:
        rest = rest[: rest.index(":")] + ":***" + rest[at:]
    head, question, query = rest.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        query = "&".join(_redact_param(p) for p in query.split("&")) + hash_ + fragment
    return f"{scheme}{sep}{head}{question}{query}"


def _redact_param(param: str) -> str:
    name, eq, _ = param.partition("=")
    return f"{name}=***" if eq and _SECRET_PARAM.search(unquote(name)) else param


#: the connection classes of each URL scheme: (sync, asyncio)
_CONNECTION_CLASSES: dict[str, tuple[type, type]] = {
    "redis": (sync_connection.Connection, async_connection.Connection),
    "rediss": (sync_connection.SSLConnection, async_connection.SSLConnection),
    "unix": (
        sync_connection.UnixDomainSocketConnection,
        async_connection.UnixDomainSocketConnection,
    ),
}
#: parameters that take a Python object (a class, a Retry, a callback), never URL text
_OBJECT_VALUED = re.compile(r"redis\.|[Tt]ype\[|Callable|Protocol|Mapping|enum")


def _init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters of ``cls.__init__`` and of its bases' (``**kwargs`` goes up)."""
    found: dict[str, inspect.Parameter] = {}
    for base in reversed(cls.__mro__):
        init = base.__dict__.get("__init__")
        if init is not None:
            found.update(inspect.signature(init).parameters)
    return {
        n: p
        for n, p in found.items()
        if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


@functools.cache
def url_parameters(scheme: str) -> frozenset[str]:
    """The query parameters a ``scheme://`` URL may carry: those redis-py's connection
    classes for it (sync and asyncio alike) and its connection pool accept, except those
    that take a Python object (``URL_QUERY_ARGUMENT_PARSERS`` converts the others)."""
    sync_cls, async_cls = _CONNECTION_CLASSES[scheme]
    sync_params, async_params = _init_parameters(sync_cls), _init_parameters(async_cls)
    parsed = set(sync_connection.URL_QUERY_ARGUMENT_PARSERS)
    names = {
        name
        for name in sync_params.keys() & async_params.keys()
        if name in parsed or not _OBJECT_VALUED.search(str(async_params[name].annotation))
    }
    return frozenset(names | {"max_connections"})


#: TLS parameters naming a file (or, ssl_ca_path, a directory) that must exist
_TLS_PATHS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_ca_path")
_CERT_REQS = ("none", "optional", "required")


def _check_tls_values(url: str, name: str, values: list[str]) -> None:
    for value in values:
        if name in _TLS_PATHS and not os.path.exists(value):
            raise ConfigError(
                f"{redact_url(url)!r}: {name}={value!r} does not exist; give the path of the "
                "PEM file (a directory for ssl_ca_path) this machine can read"
            )
        if name == "ssl_cert_reqs" and value not in _CERT_REQS:
            raise ConfigError(
                f"{redact_url(url)!r}: ssl_cert_reqs={value!r} is not one of "
                f"{', '.join(_CERT_REQS)}"
            )


def _check_query(url: str) -> None:
    parts = urlparse(url)
    accepted = url_parameters(parts.scheme)
    for name, values in parse_qs(parts.query, keep_blank_values=True).items():
        if name in accepted:
            _check_tls_values(url, name, values)
            continue
        near = [a for a in sorted(accepted) if a.lower() == name.lower()]
        if near:
            hint = f"write {near[0]!r} (names are case-sensitive)"
        elif name.startswith("ssl_") and parts.scheme != "rediss":
            hint = "ssl_* parameters need a rediss:// URL (TLS)"
        else:
            hint = "remove it (redis-py's Redis.from_url lists the parameters it takes)"
        raise ConfigError(
            f"{redact_url(url)!r}: a {parts.scheme}:// URL cannot carry the query parameter "
            f"{name!r}, which redis-py's connection does not take; {hint}"
        )


def check_redis_url(url: str) -> None:
    """Raise :class:`ConfigError` unless redis-py can use ``url``: its scheme, host, port
    and query parameters (only those the connection class of its scheme accepts)."""
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
        _check_query(url)
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        example = (
            redact_url(f"redis://{url}")
            if "://" not in url
            else "redis://[[USER]:PASSWORD@]HOST:PORT/DB (rediss:// for TLS, unix:///PATH)"
        )
        raise ConfigError(
            f"{redact_url(url)!r} is not a Redis URL ({err.args[0] if err.args else err}); "
            f"write {example}"
        ) from None


def read_secret_file(path: str, what: str = "Redis password") -> str:
    """The secret kept in the file at ``path`` (without the line end it may have); a
    :class:`ConfigError` naming the file, never its contents, when it cannot be read or
    is empty."""
    try:
        with open(path, encoding="utf-8") as file:
            secret = file.read().removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read the {what} file {path!r}: {reason}") from None
    if not secret:
        raise ConfigError(f"the {what} file {path!r} is empty")
    return secret
