"""Opening Zenoh sessions from :class:`~oprc_redis_events.config.Settings`.

Listen endpoints are always set explicitly (a peer otherwise listens on every
interface) and multicast scouting is off unless asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from .config import Settings
from .errors import ConfigError, ZenohUnavailableError

__all__ = ["build_config", "open_session", "open_session_retrying"]


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
            f"cannot read Zenoh config file {settings.zenoh_config!r}: {err}"
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
            raise ConfigError(f"invalid Zenoh setting {path}={value!r}: {err}") from err
    return config


def open_session(settings: Settings, **kw: Any) -> Any:
    """Open a Zenoh session; errors become :class:`ZenohUnavailableError`."""
    import zenoh

    config = build_config(settings, **kw)
    try:
        return zenoh.open(config)
    except zenoh.ZError as err:
        raise ZenohUnavailableError(f"cannot open a Zenoh session: {err}") from err


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
