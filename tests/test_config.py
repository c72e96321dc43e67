"""Settings from the environment (pure)."""

from __future__ import annotations

import pytest

from oprc_redis_events import ConfigError, Settings
from oprc_redis_events.config import redact_url

pytestmark = pytest.mark.quick  # no server: `make quick`


def test_platform_defaults() -> None:
    s = Settings.from_env({})
    assert (s.events_enabled, s.max_trigger_depth, s.trigger_timeout_ms) == (True, 10, 30_000)
    assert s.payload_format == "json"


def test_platform_environment_names() -> None:
    s = Settings.from_env(
        {
            "ODGM_EVENTS_ENABLED": "false",
            "ODGM_MAX_TRIGGER_DEPTH": "3",
            "ODGM_TRIGGER_TIMEOUT_MS": "500",
            "OPRC_EVENTS_PAYLOAD_FORMAT": "protobuf",
            "OPRC_EVENTS_MAX_CONCURRENT_TRIGGERS": "8",
            "OPRC_EVENTS_REDIS_URL": "redis://127.0.0.1:7000/1",
            "OPRC_EVENTS_ZENOH_CONNECT": "tcp/127.0.0.1:7447, tcp/127.0.0.1:7448",
        }
    )
    assert s.events_enabled is False and s.max_trigger_depth == 3
    assert s.trigger_timeout_ms == 500 and s.payload_format == "protobuf"
    assert s.max_concurrent_triggers == 8
    assert s.redis_url == "redis://127.0.0.1:7000/1"
    assert s.zenoh_connect == ("tcp/127.0.0.1:7447", "tcp/127.0.0.1:7448")


def test_overrides_win_and_none_is_ignored() -> None:
    s = Settings.from_env({"ODGM_MAX_TRIGGER_DEPTH": "3"}, max_trigger_depth=5, payload_format=None)
    assert s.max_trigger_depth == 5 and s.payload_format == "json"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ODGM_EVENTS_ENABLED": "maybe"}, "ODGM_EVENTS_ENABLED='maybe' is not a boolean"),
        ({"ODGM_MAX_TRIGGER_DEPTH": "ten"}, "ODGM_MAX_TRIGGER_DEPTH='ten' is not an integer"),
        ({"ODGM_MAX_TRIGGER_DEPTH": "0"}, "max_trigger_depth must be >= 1"),
        ({"OPRC_EVENTS_PAYLOAD_FORMAT": "xml"}, "payload_format must be one of json, protobuf"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_passwords_never_show() -> None:
    s = Settings.from_env({}, redis_url="redis://user:s3cret@127.0.0.1:6380/0")
    assert "s3cret" not in repr(s)
    assert "***" in repr(s)
    assert redact_url("redis://:pw@127.0.0.1:1/0") == "redis://:***@127.0.0.1:1/0"
    assert redact_url("redis://127.0.0.1:1/0") == "redis://127.0.0.1:1/0"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:s3cret@127.0.0.1:6380/0", "redis://user:***@127.0.0.1:6380/0"),
        ("redis://:s3cret@127.0.0.1:6380/0", "redis://:***@127.0.0.1:6380/0"),
        ("redis://127.0.0.1:6380/0?password=s3cret", "redis://127.0.0.1:6380/0?password=***"),
        (
            "rediss://u@h:1/0?ssl_password=s3cret&db=2&Password=s3cret",
            "rediss://u@h:1/0?ssl_password=***&db=2&Password=***",
        ),
        ("unix:///tmp/redis.sock?db=1&password=s3cret", "unix:///tmp/redis.sock?db=1&password=***"),
        ("redis://:s3c/ret@[::1]:6380/0", "redis://:***@[::1]:6380/0"),
        ("redis://:s3c%40ret@h:1/0", "redis://:***@h:1/0"),
        ("s3cret@h:1", "s3cret@h:1"),  # no scheme and no password: nothing to hide
        (":s3cret@h:1", ":***@h:1"),
    ],
)
def test_every_password_form_is_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_settings_repr_hides_a_password_in_the_query() -> None:
    s = Settings.from_env({"OPRC_EVENTS_REDIS_URL": "redis://h:1/0?password=s3cret"})
    assert "s3cret" not in repr(s) and "password=***" in repr(s)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:6379", "write redis://127.0.0.1:6379"),
        (":s3cret@127.0.0.1:6379", "write redis://:***@127.0.0.1:6379"),
        ("redis://h:port/0", "Port could not be cast to integer"),
        ("redis://h/0?db=x&password=s3cret", "Invalid value for 'db'"),
    ],
)
def test_a_url_redis_cannot_use_is_refused_without_showing_the_password(
    url: str, message: str
) -> None:
    with pytest.raises(ConfigError, match="is not a Redis URL") as info:
        Settings.from_env({}, redis_url=url)
    assert message in str(info.value) and "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h:1/0?foo=bar", "query parameter 'foo'"),
        ("redis://h:1/0?ssl_password=s3cret", "ssl_* parameters need a rediss:// URL"),
        ("redis://h:1/0?Password=s3cret", "write 'password' (names are case-sensitive)"),
        ("unix:///tmp/r.sock?socket_keepalive=true", "query parameter 'socket_keepalive'"),
        ("redis://h:1/0?retry=x", "query parameter 'retry'"),  # takes a Retry, not text
    ],
)
def test_a_query_parameter_redis_py_does_not_take_is_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match="cannot carry the query parameter") as info:
        Settings.from_env({}, redis_url=url)
    assert message in str(info.value) and "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:1/0?socket_timeout=2&db=3&password=p&client_name=me&protocol=3",
        "rediss://h:1/0?ssl_cert_reqs=none&ssl_password=p&ssl_check_hostname=false",
        "unix:///tmp/r.sock?db=1&password=p&socket_timeout=1",
    ],
)
def test_the_query_parameters_redis_py_takes_are_accepted_and_work(url: str) -> None:
    import redis
    import redis.asyncio

    Settings.from_env({}, redis_url=url)
    redis.Redis.from_url(url).connection_pool.make_connection()  # no TypeError
    redis.asyncio.Redis.from_url(url).connection_pool.make_connection()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("ssl_ca_certs=/nope/ca.pem", "ssl_ca_certs='/nope/ca.pem' does not exist"),
        ("ssl_certfile=/nope/c.pem&ssl_password=s3cret", "ssl_certfile='/nope/c.pem' does not"),
        ("ssl_keyfile=/nope/k.pem", "ssl_keyfile='/nope/k.pem' does not exist"),
        ("ssl_cert_reqs=bogus", "ssl_cert_reqs='bogus' is not one of none, optional, required"),
    ],
)
def test_a_tls_parameter_naming_no_file_or_no_mode_is_refused(query: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({}, redis_url=f"rediss://h:1/0?{query}")
    assert message in str(info.value) and "s3cret" not in str(info.value)
