"""One typed settings object, read from the environment in one place.

The platform's own names come first (``ODGM_EVENTS_ENABLED``, ``ODGM_MAX_TRIGGER_DEPTH``,
``ODGM_TRIGGER_TIMEOUT_MS``) with the platform's defaults; this project's own settings
use the ``OPRC_EVENTS_`` prefix.  CLI flags override the environment.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlparse

import redis.asyncio.connection as async_connection
import redis.connection as sync_connection
from redis.connection import parse_url

from .errors import ConfigError

__all__ = [
    "ENV_VARS",
    "PayloadFormat",
    "Settings",
    "check_redis_url",
    "read_secret_file",
    "redact_url",
]

PayloadFormat = Literal["json", "protobuf"]
PAYLOAD_FORMATS: tuple[str, ...] = ("json", "protobuf")
ZENOH_MODES: tuple[str, ...] = ("peer", "client", "router")
CAPTURE_MODES: tuple[str, ...] = ("off", "keyspace")

#: setting name -> environment variable
ENV_VARS: dict[str, str] = {
    "events_enabled": "ODGM_EVENTS_ENABLED",
    "max_trigger_depth": "ODGM_MAX_TRIGGER_DEPTH",
    "trigger_timeout_ms": "ODGM_TRIGGER_TIMEOUT_MS",
    "max_concurrent_triggers": "OPRC_EVENTS_MAX_CONCURRENT_TRIGGERS",
    "payload_format": "OPRC_EVENTS_PAYLOAD_FORMAT",
    "redis_url": "OPRC_EVENTS_REDIS_URL",
    "redis_username": "OPRC_EVENTS_REDIS_USERNAME",
    "redis_password": "OPRC_EVENTS_REDIS_PASSWORD",
    "redis_password_file": "OPRC_EVENTS_REDIS_PASSWORD_FILE",
    "cluster": "OPRC_EVENTS_CLUSTER",
    "zenoh_mode": "OPRC_EVENTS_ZENOH_MODE",
    "zenoh_connect": "OPRC_EVENTS_ZENOH_CONNECT",
    "zenoh_listen": "OPRC_EVENTS_ZENOH_LISTEN",
    "zenoh_config": "OPRC_EVENTS_ZENOH_CONFIG",
    "zenoh_multicast_scouting": "OPRC_EVENTS_ZENOH_MULTICAST_SCOUTING",
    "group": "OPRC_EVENTS_GROUP",
    "consumer": "OPRC_EVENTS_CONSUMER",
    "batch_size": "OPRC_EVENTS_BATCH_SIZE",
    "max_deliveries": "OPRC_EVENTS_MAX_DELIVERIES",
    "retry_base_ms": "OPRC_EVENTS_RETRY_BASE_MS",
    "retry_max_ms": "OPRC_EVENTS_RETRY_MAX_MS",
    "claim_idle_ms": "OPRC_EVENTS_CLAIM_IDLE_MS",
    "hold": "OPRC_EVENTS_HOLD",
    "hold_max_age_ms": "OPRC_EVENTS_HOLD_MAX_AGE_MS",
    "ack_delay_ms": "OPRC_EVENTS_ACK_DELAY_MS",
    "capture": "OPRC_EVENTS_CAPTURE",
    "from_now": "OPRC_EVENTS_FROM_NOW",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


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


def _check_query(url: str) -> None:
    parts = urlparse(url)
    accepted = url_parameters(parts.scheme)
    for name in parse_qs(parts.query, keep_blank_values=True):
        if name in accepted:
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


def _default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    """Everything the library, the worker and the CLI can be configured with.

    ``events_enabled=False`` turns the event work off: writes match no trigger and queue no
    outbox entry.
    ``max_trigger_depth``: an event whose depth is >= this is not dispatched.
    ``max_deliveries``: attempts of an entry before it is dead-lettered; retries wait
    ``retry_base_ms`` doubling up to ``retry_max_ms``.
    ``claim_idle_ms``: lease time of a partition, and idle time after which entries a dead
    worker left pending are claimed.
    ``ack_delay_ms``: how long after its last PUT a batch is acknowledged: Zenoh's put()
    returns once a message is queued, not sent, so an immediate XACK could lose the queue
    to a crash; a crash inside the delay causes redelivery instead.
    ``capture``: ``keyspace`` makes the worker report writes that bypass the library.
    ``hold``: keep an event pending while its target key has no Zenoh subscriber, up to
    ``hold_max_age_ms`` after its write (then dead-letter it).
    ``zenoh_connect`` / ``zenoh_listen``: Zenoh endpoints such as ``tcp/127.0.0.1:7447``.
    ``from_now``: a consumer group the worker creates skips the entries written before the
    worker started (by default a new group reads the whole retained outbox).
    ``cluster``: ``redis_url`` is a seed node of a Redis Cluster (redis-py's cluster client
    finds the others and follows MOVED/ASK).
    ``redis_username`` / ``redis_password`` / ``redis_password_file`` (a file holding the
    password): credentials for a URL without them (the URL's own win); the password is in
    no repr, log or message.
    ``zenoh_mode``: ``None`` means client when there are connect endpoints (a Zenoh router
    relays between its clients, not between its peers) and peer otherwise.
    """

    events_enabled: bool = True
    max_trigger_depth: int = 10
    trigger_timeout_ms: int = 30_000
    max_concurrent_triggers: int = 256
    payload_format: PayloadFormat = "json"
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    redis_username: str | None = None
    redis_password: str | None = field(default=None, repr=False)
    redis_password_file: str | None = None
    cluster: bool = False
    zenoh_mode: str | None = None
    zenoh_connect: tuple[str, ...] = ()
    zenoh_listen: tuple[str, ...] = ()
    zenoh_config: str | None = None
    zenoh_multicast_scouting: bool = False
    group: str = "oprc-events"
    consumer: str = field(default_factory=_default_consumer)
    batch_size: int = 500
    max_deliveries: int = 10
    retry_base_ms: int = 200
    retry_max_ms: int = 30_000
    claim_idle_ms: int = 15_000
    hold: bool = False
    hold_max_age_ms: int = 60_000
    ack_delay_ms: int = 200
    capture: str = "off"
    from_now: bool = False

    def __post_init__(self) -> None:
        check_redis_url(self.redis_url)
        if self.redis_password_file:
            read_secret_file(self.redis_password_file)
        for name in ("max_deliveries", "retry_base_ms", "retry_max_ms", "hold_max_age_ms"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.capture not in CAPTURE_MODES:
            raise ConfigError(
                f"capture must be one of {', '.join(CAPTURE_MODES)}, got {self.capture!r}"
            )
        if self.ack_delay_ms < 0:
            raise ConfigError(f"ack_delay_ms must be >= 0, got {self.ack_delay_ms}")
        if self.claim_idle_ms < 500:
            raise ConfigError(f"claim_idle_ms must be >= 500, got {self.claim_idle_ms}")
        if self.max_trigger_depth < 1:
            raise ConfigError(f"max_trigger_depth must be >= 1, got {self.max_trigger_depth}")
        if self.trigger_timeout_ms < 1:
            raise ConfigError(f"trigger_timeout_ms must be >= 1, got {self.trigger_timeout_ms}")
        if self.max_concurrent_triggers < 1:
            raise ConfigError(
                f"max_concurrent_triggers must be >= 1, got {self.max_concurrent_triggers}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.payload_format not in PAYLOAD_FORMATS:
            raise ConfigError(
                f"payload_format must be one of {', '.join(PAYLOAD_FORMATS)}, "
                f"got {self.payload_format!r}"
            )
        if self.zenoh_mode is not None and self.zenoh_mode not in ZENOH_MODES:
            raise ConfigError(
                f"zenoh_mode must be one of {', '.join(ZENOH_MODES)}, got {self.zenoh_mode!r}"
            )

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr
        )
        return f"Settings(redis_url={redact_url(self.redis_url)!r}, {shown})"

    def redis_credentials(self) -> dict[str, str]:
        """``username`` and ``password`` for redis-py from the settings (the password
        file is read again each time, so a rotated password is picked up by new clients)."""
        password = self.redis_password
        if self.redis_password_file:
            password = read_secret_file(self.redis_password_file)
        found = {"username": self.redis_username, "password": password}
        return {name: value for name, value in found.items() if value}

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied; ``None`` values are ignored (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``environ`` (default ``os.environ``), then ``overrides`` on top."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for name, var in ENV_VARS.items():
            raw = env.get(var)
            if raw is not None and raw.strip() != "":
                values[name] = _parse(var, raw.strip(), str(types[name]))
        return cls(**values).replace(**overrides)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> Settings:
        """Settings from the environment with ``redis_url=url``."""
        return cls.from_env(redis_url=url, **overrides)


def _parse(var: str, raw: str, type_name: str) -> Any:
    if type_name == "bool":
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{var}={raw!r} is not a boolean (use true or false)")
    if type_name in ("int", "int | None"):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{var}={raw!r} is not an integer") from None
    if type_name.startswith("tuple"):
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    return raw
