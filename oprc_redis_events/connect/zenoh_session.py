"""Opening Zenoh sessions from :class:`~oprc_redis_events.config.Settings`.

Listen endpoints are always set explicitly (a peer otherwise listens on every
interface) and multicast scouting is off unless asked for.  The config file passes through
as Zenoh reads it (TLS and mutual TLS under ``transport/link/tls``, user-password
authentication under ``transport/auth/usrpwd``, ``access_control``); it is never logged,
and an error about it shows no value from it (it may hold a password).

A router that accepts the TCP connection but refuses the session (wrong credentials, a
certificate it does not trust or no client certificate, TLS against a plain endpoint)
looks to Zenoh like an unreachable one; :func:`open_session` tells them apart by trying a
plain TCP connection and raises :class:`ConfigError` (not retried) for a refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import threading
import time
from typing import Any

from ..config import Settings
from ..errors import ConfigError, ZenohUnavailableError

__all__ = [
    "build_config",
    "config_file_message",
    "is_isolated",
    "open_session",
    "open_session_retrying",
    "open_session_waiting",
    "zenoh_message",
]

_RUST_SOURCE = re.compile(r"\s+at\s+\S+\.rs:\d+(:\d+)?\.?")
_JSON5_MESSAGE = re.compile(r'Json5Err\(Message \{ msg: "(.*?)", location: .*\}\)')
_JSON_MESSAGE = re.compile(
    r'JSON error: Message \{ msg: "(.*?)", location: Some\(Location \{ line: (\d+), '
    r"column: (\d+) \}\) \}"
)
#: the value an "invalid type" message quotes (it may be a password), up to ", expected"
_QUOTED_VALUE = re.compile(r"(invalid (?:type|value): [a-z ]+?) (?:`|\\?\").*?(, expected)")
_SOURCE_LINE = re.compile(r"^\s*\d*\s*\|.*$", re.MULTILINE)  # a syntax error's quoted line
_UNREACHABLE = "Unable to connect to any of"
REFUSED_HINT = (
    "check the credentials (transport/auth/usrpwd: user, password) and the TLS settings "
    "(transport/link/tls: root_ca_certificate; for mutual TLS enable_mtls, "
    "connect_certificate, connect_private_key) in --zenoh-config (OPRC_EVENTS_ZENOH_CONFIG), "
    "and that the endpoint's protocol (tcp/ or tls/) is the one the router listens with"
)


def zenoh_message(err: BaseException) -> str:
    """A Zenoh error's text for a person: without the Rust source location it ends with,
    and a configuration error's message without its Rust debug wrapping."""
    text = _RUST_SOURCE.sub("", str(err)).strip()
    return _JSON5_MESSAGE.sub(r"\1", text)


def config_file_message(err: BaseException) -> str:
    """A Zenoh config file error without any value of the file: not the value an
    "invalid type" message quotes, nor the source line of a syntax error."""
    text = _QUOTED_VALUE.sub(r"\1\2", zenoh_message(err))
    text = _JSON_MESSAGE.sub(r"\1 (line \2, column \3)", text)
    return " ".join(_SOURCE_LINE.sub("", text).split())


def build_config(
    settings: Settings,
    *,
    mode: str | None = None,
    connect: tuple[str, ...] | None = None,
    listen: tuple[str, ...] | None = None,
) -> Any:
    """A ``zenoh.Config``: the config file (if any), then the settings on top."""
    import zenoh

    try:
        config = (
            zenoh.Config.from_file(settings.zenoh_config)
            if settings.zenoh_config
            else zenoh.Config()
        )
    except (zenoh.ZError, OSError) as err:
        raise ConfigError(
            f"cannot read Zenoh config file {settings.zenoh_config!r}: {config_file_message(err)}"
        ) from err
    endpoints = list(settings.zenoh_connect if connect is None else connect)
    values = {
        "mode": mode or settings.zenoh_mode or ("client" if endpoints else "peer"),
        "connect/endpoints": endpoints,
        "listen/endpoints": list(settings.zenoh_listen if listen is None else listen),
        "scouting/multicast/enabled": settings.zenoh_multicast_scouting,
    }
    for path, value in values.items():
        if path.endswith("endpoints") and not value and settings.zenoh_config:
            continue  # keep what the file says
        try:
            config.insert_json5(path, json.dumps(value))
        except zenoh.ZError as err:
            raise ConfigError(
                f"invalid Zenoh setting {path}={value!r}: {zenoh_message(err)}"
            ) from err
    return config


def is_isolated(settings: Settings) -> bool:
    """Whether a session opened with ``settings`` could reach nothing and be reached by
    nothing: no endpoint to connect to or listen on, and multicast scouting off."""
    config = build_config(settings)

    def value(path: str) -> Any:
        return json.loads(config.get_json(path))

    return (
        not value("connect/endpoints")
        and not value("listen/endpoints")
        and value("scouting/multicast/enabled") is False
    )


def _accepts_tcp(endpoint: str, timeout: float = 1.0) -> bool:
    """Whether a ``tcp/``, ``tls/`` or ``ws/`` endpoint accepts a TCP connection."""
    proto, _, rest = endpoint.partition("/")
    host, _, port = re.split(r"[?#]", rest, maxsplit=1)[0].rpartition(":")
    if proto not in ("tcp", "tls", "ws") or not port.isdigit():
        return False
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout).close()
    except OSError:
        return False
    return True


def _refused(config: Any) -> list[str]:
    """The connect endpoints of ``config`` that accept a TCP connection."""
    endpoints = json.loads(config.get_json("connect/endpoints"))
    return [e for e in endpoints if isinstance(e, str) and _accepts_tcp(e)]


def open_session(settings: Settings, *, attempts: int = 3, **kw: Any) -> Any:
    """Open a Zenoh session; errors become :class:`ZenohUnavailableError`, a refusal by a
    reachable router (``attempts`` times, 0.5 s apart) a :class:`ConfigError`."""
    import zenoh

    config = build_config(settings, **kw)
    for attempt in range(1, attempts + 1):
        try:
            return zenoh.open(config)
        except zenoh.ZError as err:
            text = zenoh_message(err)
            if "listener" in text.lower():  # a listen endpoint that cannot be bound
                raise ConfigError(
                    f"cannot listen on a Zenoh endpoint: {text}; give --zenoh-listen (or "
                    "OPRC_EVENTS_ZENOH_LISTEN) a free address, or stop what is using it"
                ) from err
            refused = _refused(config) if _UNREACHABLE in text else []
            if not refused:
                raise ZenohUnavailableError(f"cannot open a Zenoh session: {text}") from err
            if attempt == attempts:
                raise ConfigError(
                    f"Zenoh at {', '.join(refused)} refused the session (the endpoint accepts "
                    f"connections, but not this session's credentials or TLS); {REFUSED_HINT}"
                ) from err
            time.sleep(0.5)
    raise AssertionError("unreachable")  # pragma: no cover


def open_session_waiting(
    settings: Settings,
    stop: threading.Event,
    log: logging.Logger,
    *,
    deadline: float | None = None,
    **kw: Any,
) -> Any | None:
    """:func:`open_session_retrying` for threads: ``None`` when ``stop`` is set, or the
    ``deadline`` (``time.monotonic()``) passes, before the endpoints can be reached."""
    backoff = 0.5
    while not stop.is_set():
        try:
            return open_session(settings, **kw)
        except ZenohUnavailableError as err:
            log.warning("Zenoh unavailable (%s); retrying in %.1fs", err, backoff)
        wait = backoff if deadline is None else min(backoff, deadline - time.monotonic())
        if wait <= 0:
            break
        stop.wait(wait)
        backoff = min(backoff * 2, 10.0)
    return None


async def open_session_retrying(
    settings: Settings, stop: asyncio.Event, log: logging.Logger, **kw: Any
) -> Any | None:
    """Open a session, retrying with backoff (0.5 s doubling to 10 s) while the endpoints
    cannot be reached; ``None`` when ``stop`` is set first.  A bad configuration is not
    retried."""
    backoff = 0.5
    while not stop.is_set():
        try:
            return await asyncio.to_thread(open_session, settings, **kw)
        except ZenohUnavailableError as err:
            log.warning("Zenoh unavailable (%s); retrying in %.1fs", err, backoff)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
        backoff = min(backoff * 2, 10.0)
    return None
