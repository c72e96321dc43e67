"""Settings from the environment (pure)."""

from __future__ import annotations

import pytest

from oprc_redis_events import ConfigError, Settings
from oprc_redis_events.config import redact_url


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
