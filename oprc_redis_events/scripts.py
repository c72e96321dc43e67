"""Loading of the Lua scripts in ``lua/``, for sync and asyncio clients alike.

Scripts are registered through redis-py's ``register_script``: the returned objects
run EVALSHA and load the script again after ``NOSCRIPT`` (a Redis restart, a failover,
``SCRIPT FLUSH``), so callers never manage the script cache.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

__all__ = ["SCRIPT_NAMES", "register", "source"]

SCRIPT_NAMES = ("write", "lease", "capture", "expire")


#: scripts that use the shared library lua/lib/events.lua (a script cannot import one)
USES_LIBRARY = frozenset({"write", "capture"})


def _read(*parts: str) -> str:
    return resources.files(__package__).joinpath("lua", *parts).read_text("utf-8")


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua`` shipped inside the package, after the shared library
    when it uses it."""
    body = _read(f"{name}.lua")
    return _read("lib", "events.lua") + "\n" + body if name in USES_LIBRARY else body


def register(client: Any, name: str) -> Any:
    """A redis-py ``Script`` (sync client) or ``AsyncScript`` (asyncio client) for ``name``."""
    return client.register_script(source(name))
