"""``acl``: the Redis ACL rules of one role, for ``ACL SETUSER``."""

from __future__ import annotations

import click

from ..protocol.acl import ROLES, rules

__all__ = ["acl"]


@click.command()
@click.option(
    "--role",
    "roles",
    required=True,
    multiple=True,
    type=click.Choice(list(ROLES)),
    help="Whose rules to print; repeat it for a user with several roles (their union).",
)
@click.option(
    "--db",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="The database keyspace capture listens on (its notification channel names it).",
)
def acl(roles: tuple[str, ...], db: int) -> None:
    """Print the rules of one ACL SETUSER line for ROLE (Redis 7), e.g.

    redis-cli ACL SETUSER worker1 on '>pw' $(oprc-redis-events acl --role worker)

    writer: the store and the evented client (cannot read or trim the outbox); worker:
    the worker (cannot write objects; it records function events with the write script);
    capture: the worker with --capture keyspace; admin: every other command.  A worker
    serving the data API (--serve-objects) also writes objects: --role worker --role writer.
    """
    click.echo(rules(roles, db))
