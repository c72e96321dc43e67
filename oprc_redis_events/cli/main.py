"""The ``oprc-redis-events`` command line: thin, and the only place logging is configured.

Every option falls back to its environment variable (shown in ``--help``), then to the
platform's default.  A user mistake or an unreachable server is one ``Error:`` line and a
non-zero exit status, never a traceback (:class:`~.base.UserErrorGroup`).

The commands live beside this module: ``worker`` (worker, serve), ``tools`` (demo, bench),
``objects`` (get, put, delete, triggers, explain), ``objects_serve`` (objects: the ODGM data
API), ``tail`` (tail), ``dlq`` (dlq, trim), ``groups`` (groups) and ``acl`` (acl).
"""

from __future__ import annotations

import click

from . import acl as cli_acl
from . import dlq as cli_dlq
from . import events as cli_events
from . import groups as cli_groups
from . import objects as cli_objects
from . import objects_serve as cli_objects_serve
from . import tail as cli_tail
from . import tools as cli_tools
from . import worker as cli_worker
from .base import UserErrorGroup

__all__ = ["main"]


@click.group(cls=UserErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="oprc-redis-events")
def main() -> None:
    """Object events for Redis: triggers on object changes become OPRC invocations on Zenoh."""


for _command in (
    cli_worker.worker,
    cli_tools.demo,
    cli_worker.serve,
    cli_tools.bench,
    cli_dlq.dlq,
    cli_dlq.trim,
    cli_groups.groups,
    cli_events.events,
    cli_objects.get,
    cli_objects.put,
    cli_objects.delete,
    cli_objects.triggers,
    cli_objects.explain,
    cli_objects_serve.objects,
    cli_tail.tail,
    cli_acl.acl,
):
    main.add_command(_command)


if __name__ == "__main__":
    main()
