"""The development servers the tests and tools start (oprc_redis_events.dev.servers)."""

from __future__ import annotations

import socket

import pytest
import redis

from oprc_redis_events.dev.servers import RedisServer
from oprc_redis_events.errors import OprcEventsError


def _taken_port() -> socket.socket:
    """A socket bound to a loopback port: the port is taken while it is open."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def test_a_port_taken_before_the_server_binds_it_is_chosen_again() -> None:
    """Tests run in parallel processes: a port another process took between the choice
    and the server's start is chosen again when the class chose it."""
    with _taken_port() as taken:
        server = RedisServer()
        server.port = taken.getsockname()[1]  # as if another process took the chosen port
        with server:
            assert server.port != taken.getsockname()[1]
            assert redis.Redis(port=server.port).ping()


def test_a_port_the_caller_gave_is_not_changed() -> None:
    with _taken_port() as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OprcEventsError, match="already in use"), RedisServer(port=port):
            pass
