"""Object commands of the CLI: get, put, delete, triggers, explain, tail."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from . import admin
from .config import Settings
from .errors import OprcEventsError
from .keys import FieldKey, parse_field_name, parse_object_segment

__all__ = ["delete", "explain", "get", "put", "tail", "triggers"]


def _store(redis_url: str | None) -> Any:
    from .store import ObjectStore

    settings = Settings.from_env(redis_url=redis_url)
    return ObjectStore.from_url(settings.redis_url)


def _oid(text: str) -> int | str:
    return parse_object_segment(text)


def _assignments(pairs: tuple[str, ...]) -> dict[FieldKey, bytes]:
    out: dict[FieldKey, bytes] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not FIELD=VALUE", param_hint="FIELD=VALUE")
        out[parse_field_name(key)] = value.encode()
    return out


_redis = click.option("--redis-url", help="Redis to use. [env: OPRC_EVENTS_REDIS_URL]")
_object = [
    click.argument("cls_id", metavar="CLS"),
    click.argument("partition", type=int),
    click.argument("object_id", metavar="OID"),
]


def _object_args(fn: Any) -> Any:
    for decorator in reversed(_object):
        fn = decorator(fn)
    return _redis(fn)


def _fail(err: OprcEventsError) -> click.ClickException:
    return click.ClickException(str(err))


@click.command()
@_object_args
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def get(redis_url: str | None, cls_id: str, partition: int, object_id: str, as_json: bool) -> None:
    """Print an object: its fields, version and triggers."""
    with _store(redis_url) as store:
        try:
            record = store.get(cls_id, partition, _oid(object_id))
        except OprcEventsError as err:
            raise _fail(err) from err
    if record is None:
        raise click.ClickException(f"object {cls_id}/{partition}/{object_id} does not exist")
    triggers = [
        (kind, key, slot, admin.describe_target(t))
        for kind, key, slot, t in admin.list_triggers(record.event)
    ]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "cls_id": cls_id,
                    "partition_id": partition,
                    "object_id": record.object_id,
                    "version": record.version,
                    "entries": {
                        str(k): v.decode(errors="replace") for k, v in record.entries.items()
                    },
                    "triggers": [
                        {"on": f"{kind}[{key}].{slot}", "target": t}
                        for kind, key, slot, t in triggers
                    ],
                }
            )
        )
        return
    click.echo(f"{cls_id}/{partition}/{object_id} version {record.version}")
    for key, value in sorted(record.entries.items(), key=lambda kv: str(kv[0])):
        click.echo(f"  {key} = {value!r}")
    for kind, key, slot, t in triggers:
        click.echo(f"  trigger {kind}[{key}].{slot} -> {t}")


@click.command()
@_object_args
@click.argument("assignments", nargs=-1, required=True, metavar="FIELD=VALUE...")
@click.option("--create", is_flag=True, help="Fail if the object exists (default: upsert).")
def put(
    redis_url: str | None,
    cls_id: str,
    partition: int,
    object_id: str,
    assignments: tuple[str, ...],
    create: bool,
) -> None:
    """Write fields (FIELD=VALUE; a numeric FIELD is a numeric key) through the write path."""
    entries = _assignments(assignments)
    with _store(redis_url) as store:
        try:
            write = store.create if create else store.upsert
            result = write(cls_id, partition, _oid(object_id), entries)
        except OprcEventsError as err:
            raise _fail(err) from err
    click.echo(f"version {result.version}: {result.events} event(s) queued")


@click.command()
@_object_args
@click.argument("fields", nargs=-1, metavar="[FIELD...]")
def delete(
    redis_url: str | None, cls_id: str, partition: int, object_id: str, fields: tuple[str, ...]
) -> None:
    """Delete fields, or (with no FIELD) the object and its triggers."""
    with _store(redis_url) as store:
        try:
            if fields:
                result = store.delete_fields(
                    cls_id, partition, _oid(object_id), [parse_field_name(f) for f in fields]
                )
                click.echo(f"version {result.version}: {result.events} event(s) queued")
            elif store.delete(cls_id, partition, _oid(object_id)):
                click.echo("deleted")
            else:
                raise click.ClickException(
                    f"object {cls_id}/{partition}/{object_id} does not exist"
                )
        except OprcEventsError as err:
            raise _fail(err) from err


@click.group()
def triggers() -> None:
    """List, add or remove an object's triggers.

    EVENT is on_create, on_update, on_delete (KEY: a field) or on_complete, on_error (KEY: a
    function id); TARGET is cls/pid/fn (stateless) or cls/pid/objects/oid/fn (stateful).
    """


@triggers.command("list")
@_object_args
def triggers_list(redis_url: str | None, cls_id: str, partition: int, object_id: str) -> None:
    """Print every trigger of the object."""
    with _store(redis_url) as store:
        try:
            event = store.get_triggers(cls_id, partition, _oid(object_id))
        except OprcEventsError as err:
            raise _fail(err) from err
    found = list(admin.list_triggers(event))
    for kind, key, slot, t in found:
        click.echo(f"{kind}[{key}].{slot} -> {admin.describe_target(t)}")
    if not found:
        click.echo("no triggers", err=True)


def _edit(
    redis_url: str | None,
    cls_id: str,
    partition: int,
    object_id: str,
    add: bool,
    event: str,
    key: str,
    target: str,
    options: tuple[str, ...],
) -> int:
    """One atomic add or remove (``store.add_trigger`` / ``remove_trigger``): 1 when it
    changed the configuration, 0 when there was nothing to do."""
    spec = admin.parse_target(target, dict(o.split("=", 1) for o in options if "=" in o))
    field: FieldKey = key if event in admin.FUNC_SLOTS else parse_field_name(key)
    with _store(redis_url) as store:
        try:
            edit = store.add_trigger if add else store.remove_trigger
            count = int(edit(cls_id, partition, _oid(object_id), event, field, spec))
        except OprcEventsError as err:
            raise _fail(err) from err
    return count


_edit_args = [
    click.argument("event", type=click.Choice(admin.DATA_SLOTS + admin.FUNC_SLOTS)),
    click.argument("key"),
    click.argument("target"),
    click.option(
        "--option",
        "options",
        multiple=True,
        metavar="K=V",
        help="A req_option of the target (repeatable).",
    ),
]


def _edit_command(fn: Any) -> Any:
    for decorator in reversed(_edit_args):
        fn = decorator(fn)
    return _object_args(fn)


@triggers.command("add")
@_edit_command
def triggers_add(
    redis_url: str | None,
    cls_id: str,
    partition: int,
    object_id: str,
    event: str,
    key: str,
    target: str,
    options: tuple[str, ...],
) -> None:
    """Add TARGET to the object's EVENT trigger of KEY (atomic; nothing to do if it is there)."""
    if _edit(redis_url, cls_id, partition, object_id, True, event, key, target, options):
        click.echo(f"added {event} {key} -> {target}")
    else:
        click.echo(f"already there: {event} {key} -> {target}")


@triggers.command("remove")
@_edit_command
def triggers_remove(
    redis_url: str | None,
    cls_id: str,
    partition: int,
    object_id: str,
    event: str,
    key: str,
    target: str,
    options: tuple[str, ...],
) -> None:
    """Remove TARGET from the object's EVENT trigger of KEY (atomic)."""
    if not _edit(redis_url, cls_id, partition, object_id, False, event, key, target, options):
        raise click.ClickException(f"no {event} trigger of {key} targets {target}")
    click.echo(f"removed {event} {key} -> {target}")


@click.command()
@_object_args
@click.argument("assignments", nargs=-1, metavar="[FIELD=VALUE...]")
@click.option("--delete", "deletes", multiple=True, metavar="FIELD", help="A field to delete.")
@click.option("--delete-object", is_flag=True, help="Explain deleting the whole object.")
@click.option("--depth", type=int, default=0, show_default=True, help="Depth of the write.")
def explain(
    redis_url: str | None,
    cls_id: str,
    partition: int,
    object_id: str,
    assignments: tuple[str, ...],
    deletes: tuple[str, ...],
    delete_object: bool,
    depth: int,
) -> None:
    """Dry run: which triggers a change would fire, and why. Nothing is written."""
    with _store(redis_url) as store:
        try:
            record = store.get(cls_id, partition, _oid(object_id))
        except OprcEventsError as err:
            raise _fail(err) from err
        max_depth = store.settings.max_trigger_depth
    if record is None:
        raise click.ClickException(f"object {cls_id}/{partition}/{object_id} does not exist")
    changes = admin.diff(
        record.entries,
        _assignments(assignments),
        [parse_field_name(d) for d in deletes],
        delete_object,
    )
    for line in admin.explain(record.event, changes, depth, max_depth):
        click.echo(line)


@click.command()
@click.option(
    "--key",
    "key_expr",
    default="oprc/**",
    show_default=True,
    help="Zenoh key expression to subscribe to.",
)
@click.option(
    "--zenoh-connect",
    multiple=True,
    help="Zenoh endpoint (repeatable). [env: OPRC_EVENTS_ZENOH_CONNECT]",
)
@click.option("--zenoh-listen", multiple=True, help="Zenoh endpoint to listen on.")
@click.option("--count", type=int, help="Exit after this many invocations.")
@click.option("--timeout", type=float, help="Exit after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per invocation.")
def tail(
    key_expr: str,
    zenoh_connect: tuple[str, ...],
    zenoh_listen: tuple[str, ...],
    count: int | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Print every trigger PUT on Zenoh, decoded: key, target, event, field, payload, depth,
    invocation id. (GET invocations are queries: a subscriber does not see them.)"""
    import queue

    from .received import decode_trigger
    from .zenoh_session import open_session

    settings = Settings.from_env(
        zenoh_connect=zenoh_connect or None, zenoh_listen=zenoh_listen or None
    )
    lines: queue.Queue[str] = queue.Queue()

    def on_sample(sample: Any) -> None:
        key = str(sample.key_expr)
        try:
            t = decode_trigger(key, sample.payload.to_bytes())
        except OprcEventsError as err:
            lines.put(json.dumps({"key": key, "error": str(err)}) if as_json else f"{key}: {err}")
            return
        if as_json:
            info = t.payload.event_info
            payload = t.payload.original_payload if t.payload.HasField("original_payload") else None
            lines.put(
                json.dumps(
                    {
                        "key": key,
                        "target": f"{t.request.cls_id}.{t.request.fn_id}",
                        "event": t.event_name,
                        "source": f"{info.source_cls_id}/{info.source_partition_id}/"
                        f"{info.source_object_id_str or info.source_object_id}",
                        "field": t.field,
                        "fn_id": info.fn_id if info.HasField("fn_id") else None,
                        "payload": payload.decode(errors="replace")
                        if payload is not None
                        else None,
                        "depth": t.depth,
                        "invocation_id": t.invocation_id,
                        "event_id": info.context.get("event_id"),
                        "format": t.payload_format,
                    }
                )
            )
        else:
            lines.put(f"{key}\n  {t.describe()}")

    try:
        session = open_session(settings)
    except OprcEventsError as err:
        raise _fail(err) from err
    subscriber = session.declare_subscriber(key_expr, on_sample)
    click.echo(f"listening on {key_expr}", err=True)
    seen, deadline = 0, (time.monotonic() + timeout) if timeout else None
    try:
        while (count is None or seen < count) and (deadline is None or time.monotonic() < deadline):
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            click.echo(line)
            sys.stdout.flush()
            seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        subscriber.undeclare()
        session.close()
