"""One typed settings object, read from the environment in one place.

The platform's own names come first (``ODGM_EVENTS_ENABLED``, ``ODGM_MAX_TRIGGER_DEPTH``,
``ODGM_TRIGGER_TIMEOUT_MS``) with the platform's defaults; this project's own settings
use the ``OPRC_EVENTS_`` prefix.  CLI flags override the environment.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigError
from .urls import check_redis_url, read_secret_file, redact_url

__all__ = [
    "ENV_VARS",
    "LIMITS",
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
    "serve_objects": "OPRC_EVENTS_SERVE_OBJECTS",
    "check_permissions": "OPRC_EVENTS_CHECK_PERMISSIONS",
    "max_value_bytes": "OPRC_EVENTS_MAX_VALUE_BYTES",
    "max_fields_per_write": "OPRC_EVENTS_MAX_FIELDS_PER_WRITE",
    "max_targets_per_trigger": "OPRC_EVENTS_MAX_TARGETS_PER_TRIGGER",
    "max_config_bytes": "OPRC_EVENTS_MAX_CONFIG_BYTES",
    "max_entry_bytes": "OPRC_EVENTS_MAX_ENTRY_BYTES",
}
#: the resource limits (README "Limits"): setting -> its default
LIMITS: dict[str, int] = {
    "max_value_bytes": 8 * 1024 * 1024,
    "max_fields_per_write": 100_000,
    "max_targets_per_trigger": 1024,
    "max_config_bytes": 256 * 1024,
    "max_entry_bytes": 64 * 1024 * 1024,
}


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


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
    ``serve_objects``: classes whose ODGM data API (Zenoh GET/set/DELETE on
    ``oprc/{cls}/*/objects/*``) the worker serves from Redis, every partition.
    ``check_permissions``: the worker and the store check their Redis user's rights first.
    ``max_*``: the resource limits of one writer (README "Limits").
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
    serve_objects: tuple[str, ...] = ()
    check_permissions: bool = True
    max_value_bytes: int = LIMITS["max_value_bytes"]
    max_fields_per_write: int = LIMITS["max_fields_per_write"]
    max_targets_per_trigger: int = LIMITS["max_targets_per_trigger"]
    max_config_bytes: int = LIMITS["max_config_bytes"]
    max_entry_bytes: int = LIMITS["max_entry_bytes"]

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
        for name in LIMITS:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
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
