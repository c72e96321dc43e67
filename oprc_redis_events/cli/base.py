"""What every command of the CLI shares: logging, and errors shown as one ``Error:`` line.

:class:`UserErrorGroup` is the root group's class: whatever a command raises for a user
mistake or an unreachable server (this package's errors, redis-py's, Zenoh's, the file
system's) becomes ``Error: <what was wrong and what to do>`` and exit status 1, never a
traceback.  Commands therefore let those errors propagate.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
import redis
from redis.exceptions import RedisClusterException

from ..config import ENV_VARS, Settings, check_redis_url
from ..connect.zenoh_session import zenoh_message
from ..errors import ConfigError, InvalidIdError, OprcEventsError, RedisUnavailableError
from ..protocol.keys import validate_id

__all__ = [
    "UserErrorGroup",
    "configure_logging",
    "credential_options",
    "json_bytes",
    "redis_settings",
    "redis_url_option",
    "user_message",
]

REDIS_HINT = "is Redis running there? Point --redis-url (or OPRC_EVENTS_REDIS_URL) at it"
AUTH_HINT = (
    "give the right credentials: --redis-username / --redis-password-file (or "
    "OPRC_EVENTS_REDIS_USERNAME, OPRC_EVENTS_REDIS_PASSWORD, OPRC_EVENTS_REDIS_PASSWORD_FILE), "
    "or in --redis-url, e.g. redis://USER:PASSWORD@HOST:PORT/0"
)

TLS_HINT = (
    "the TLS handshake with Redis failed: check the rediss:// URL's ssl_ca_certs (the CA "
    "that signed the server's certificate) and, when the server requires client "
    "certificates (tls-auth-clients), its ssl_certfile and ssl_keyfile"
)
PLAIN_TO_TLS_HINT = "a Redis that accepts only TLS closes plain connections: use a rediss:// URL"


def _check_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            check_redis_url(value)
        except ConfigError as err:
            raise click.BadParameter(str(err), ctx, param) from None
    return value


F = TypeVar("F", bound=Callable[..., Any])


def setting_option(setting: str, *decls: str, help: str, **kw: Any) -> Callable[[F], F]:
    """An option that sets ``Settings.<setting>``: unset, the settings read its environment
    variable (``config.ENV_VARS``, the one table of them), which the help names."""
    return click.option(*decls, help=f"{help} [env: {ENV_VARS[setting]}]", **kw)


def env_option(var: str, *decls: str, help: str, **kw: Any) -> Callable[[F], F]:
    """An option of the command line alone (not a setting), read from ``var`` when unset."""
    return click.option(*decls, envvar=var, help=f"{help} [env: {var}]", **kw)


def apply(options: Sequence[Callable[[F], F]], fn: F) -> F:
    """``fn`` decorated with ``options``, the first one outermost (as written above it)."""
    for decorator in reversed(options):
        fn = decorator(fn)
    return fn


def _into_environment(setting: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """A callback that hands an option's value to the settings through its environment
    variable (for this command only: restored when the command ends), so every path that
    makes settings from the environment sees it."""
    var = ENV_VARS[setting]

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None:
            return
        before = os.environ.get(var)
        os.environ[var] = str(value)

        def restore() -> None:
            if before is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = before

        ctx.call_on_close(restore)

    return callback


def zenoh_endpoint_options(
    connect_help: str, listen_help: str, *, config: bool = True
) -> Callable[[F], F]:
    """``--zenoh-connect`` and ``--zenoh-listen`` (repeatable), shared by every command
    that opens a Zenoh session, and ``--zenoh-config`` (handed to the settings through
    its environment variable) unless ``config`` is false (the command has its own)."""
    options = [
        setting_option("zenoh_connect", "--zenoh-connect", multiple=True, help=connect_help),
        setting_option("zenoh_listen", "--zenoh-listen", multiple=True, help=listen_help),
    ]
    if config:
        options.append(
            setting_option(
                "zenoh_config",
                "--zenoh-config",
                type=click.Path(exists=True, dir_okay=False),
                expose_value=False,
                callback=_into_environment("zenoh_config"),
                help="Zenoh JSON5 config file (TLS, authentication, ...); the flags above "
                "override it.",
            )
        )
    return lambda fn: apply(options, fn)


def credential_options() -> list[Callable[[F], F]]:
    """``--redis-username`` and ``--redis-password-file`` (never a password on the command
    line, which ``ps`` shows to every user of the machine)."""
    return [
        setting_option(
            "redis_username",
            "--redis-username",
            expose_value=False,
            callback=_into_environment("redis_username"),
            help="Redis ACL user name, when --redis-url names none.",
        ),
        setting_option(
            "redis_password_file",
            "--redis-password-file",
            type=click.Path(exists=True, dir_okay=False),
            expose_value=False,
            callback=_into_environment("redis_password_file"),
            help="File holding the Redis password (one line), when --redis-url has none; "
            "or set OPRC_EVENTS_REDIS_PASSWORD.",
        ),
    ]


CLUSTER_HELP = (
    "The Redis URL names one node of a Redis Cluster: use redis-py's cluster client, which "
    "finds the other nodes."
)


def redis_url_option(help: str = "Redis to use.", *, env: bool = True) -> Callable[[F], F]:
    """``--redis-url``, checked as the command line is read, and ``--cluster`` (the URL is
    a seed node of a Redis Cluster): unset, the settings read ``OPRC_EVENTS_REDIS_URL`` and
    ``OPRC_EVENTS_CLUSTER`` when ``env`` (checked as they are made)."""
    option = setting_option if env else lambda _setting, *decls, **kw: click.option(*decls, **kw)
    options = [
        option("redis_url", "--redis-url", callback=_check_url, help=help),
        option("cluster", "--cluster", is_flag=True, default=None, help=CLUSTER_HELP),
        *(credential_options() if env else []),
    ]
    return lambda fn: apply(options, fn)


def redis_settings(redis_url: str | None, cluster: bool | None, **more: Any) -> Settings:
    """Settings from the environment with ``--redis-url`` and ``--cluster`` (when given)."""
    return Settings.from_env(redis_url=redis_url, cluster=cluster, **more)


def json_bytes(value: bytes) -> str | list[int]:
    """A value for JSON output: its text when it is UTF-8, else the list of its byte values
    (the platform's JSON encoding of bytes), never a lossy decoding."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return list(value)


def _is_zenoh_error(err: BaseException) -> bool:
    zenoh = sys.modules.get("zenoh")  # not imported: it cannot be a Zenoh error
    return zenoh is not None and isinstance(err, zenoh.ZError)


def _is_tls_error(err: BaseException | None) -> bool:
    """Whether ``err`` or what caused it is a TLS (``ssl``) error."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, ssl.SSLError):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def _unreachable_hint(err: BaseException) -> str:
    if _is_tls_error(err):
        return TLS_HINT
    if "Connection reset by peer" in str(err):
        return f"{REDIS_HINT} ({PLAIN_TO_TLS_HINT})"
    return REDIS_HINT


def _redis_message(err: redis.RedisError) -> str:
    text = str(err).rstrip(".")
    if isinstance(err, redis.AuthenticationError) or text.startswith(("NOAUTH", "WRONGPASS")):
        return f"Redis refused the connection: {text}; {AUTH_HINT}"
    if isinstance(err, redis.ConnectionError | redis.TimeoutError):
        return f"cannot reach Redis ({text}); {_unreachable_hint(err)}"
    if isinstance(err, redis.exceptions.NoPermissionError):
        return (
            f"Redis refused the command: {text}; give this Redis user the rules of the role "
            "the command needs, e.g. $(oprc-redis-events acl --role admin) for the operator's "
            "commands (README: Least privilege)"
        )
    return f"Redis answered with an error: {text}"


def user_message(err: BaseException) -> str | None:
    """The one-line message for an error a user can act on, ``None`` for a bug."""
    if isinstance(err, RedisUnavailableError):
        cause = err.__cause__
        if isinstance(cause, redis.AuthenticationError):
            return _redis_message(cause)
        message = f"{err}; {_unreachable_hint(err)}"
    elif isinstance(err, OprcEventsError):
        message = zenoh_message(err)
    elif isinstance(err, redis.RedisError):
        message = _redis_message(err)
    elif isinstance(err, RedisClusterException):  # not a RedisError: a seed that is no cluster
        message = (
            f"cannot use the Redis Cluster ({str(err).rstrip('.')}); {REDIS_HINT} (with "
            "--cluster it must name a node of a running cluster; without it, a single Redis)"
        )
    elif _is_zenoh_error(err):
        message = f"Zenoh: {zenoh_message(err)}"
    elif isinstance(err, OSError):
        message = str(err)
    else:
        return None
    return " ".join(message.split())  # one line


class UserErrorGroup(click.Group):
    """A click group that shows user errors as one ``Error:`` line (exit status 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise  # click's main exits quietly (status 1) when stdout's reader went away
        except Exception as err:
            message = user_message(err)
            if message is None:
                raise
            raise click.ClickException(message) from err


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message (and exc when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def configure_logging(level: str, fmt: str = "text") -> None:
    """Log to standard error as text or JSON lines; the only place logging is set up."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = _JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("redis").setLevel(max(logging.WARNING, logging.getLogger().level))


def class_ids(
    _ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    """A repeatable class option's values (an environment value split at commas), each a
    valid ``cls_id``: a bad one is a usage error naming the option."""
    classes = tuple(c.strip() for v in value for c in v.split(",") if c.strip())
    for cls_id in classes:
        try:
            validate_id("cls_id", cls_id)
        except InvalidIdError as err:
            raise click.BadParameter(str(err), param=param) from None
    return classes
