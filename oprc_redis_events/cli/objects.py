"""Object commands of the CLI: get, put, delete, triggers, explain."""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import ObjectExistsError
from ..protocol.diff import field_changes
from ..protocol.keys import (
    FieldKey,
    field_name,
    object_segment,
    parse_field_name,
    parse_object_segment,
)
from ..protocol.triggers import TargetEdit
from . import admin
from .base import json_bytes, redis_settings, redis_url_option
from .events import off_note
from .trigger_options import edit_args, target_options

__all__ = ["delete", "explain", "get", "put", "triggers"]


def _store(redis_url: str | None, cluster: bool | None) -> Any:
    from ..client.sync_generated.store import ObjectStore
    from ..connect.redis_client import redis_client

    settings = redis_settings(redis_url, cluster)
    return ObjectStore(redis_client(settings), settings)


def _oid(text: str) -> int | str:
    return parse_object_segment(text)


def _field(text: str) -> FieldKey:
    """A FIELD of the command line as a field key, refused as the store refuses it
    (``"042"``: all digits but not a canonical number) so that every command agrees."""
    key = parse_field_name(text)
    field_name(key)  # raises InvalidIdError naming the field
    return key


def _assignments(pairs: tuple[str, ...]) -> dict[FieldKey, bytes]:
    out: dict[FieldKey, bytes] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not FIELD=VALUE", param_hint="FIELD=VALUE")
        out[_field(key)] = value.encode()
    return out


_redis = redis_url_option()
_object = [
    click.argument("cls_id", metavar="CLS"),
    click.argument("partition", type=int),
    click.argument("object_id", metavar="OID"),
]


def _object_args(fn: Any) -> Any:
    for decorator in reversed(_object):
        fn = decorator(fn)
    return _redis(fn)


def _as_json(cls_id: str, partition: int, record: Any, triggers: list[Any]) -> dict[str, Any]:
    return {
        "cls_id": cls_id,
        "partition_id": partition,
        "object_id": record.object_id,
        "version": record.version,
        "entries": {str(k): json_bytes(v) for k, v in record.entries.items()},
        "triggers": [
            {"on": f"{kind}[{key}].{slot}", "target": t} for kind, key, slot, t in triggers
        ],
    }


@click.command()
@_object_args
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def get(
    redis_url: str | None,
    cluster: bool | None,
    cls_id: str,
    partition: int,
    object_id: str,
    as_json: bool,
) -> None:
    """Print an object: its fields, version and triggers.

    With --json, a value that is UTF-8 text is a JSON string and any other value is an
    array of its byte values (0-255)."""
    with _store(redis_url, cluster) as store:
        record = store.get(cls_id, partition, _oid(object_id))
    if record is None:
        raise click.ClickException(f"object {cls_id}/{partition}/{object_id} does not exist")
    triggers = [
        (kind, key, slot, admin.describe_target(t))
        for kind, key, slot, t in admin.list_triggers(record.event)
    ]
    if as_json:
        click.echo(json.dumps(_as_json(cls_id, partition, record, triggers)))
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
    cluster: bool | None,
    cls_id: str,
    partition: int,
    object_id: str,
    assignments: tuple[str, ...],
    create: bool,
) -> None:
    """Write fields (FIELD=VALUE; a numeric FIELD is a numeric key) through the write path."""
    entries = _assignments(assignments)
    with _store(redis_url, cluster) as store:
        try:
            write = store.create if create else store.upsert
            result = write(cls_id, partition, _oid(object_id), entries)
        except ObjectExistsError:
            name = f"{cls_id} {partition} {object_id}"
            raise click.ClickException(
                f"object {cls_id}/{partition}/{object_id} already exists: to change its fields "
                f"run `oprc-redis-events put {name} FIELD=VALUE...` without --create; to start "
                f"over, `oprc-redis-events delete {name}` first"
            ) from None
    click.echo(f"version {result.version}: {result.events} event(s) queued")


@click.command()
@_object_args
@click.argument("fields", nargs=-1, metavar="[FIELD...]")
def delete(
    redis_url: str | None,
    cluster: bool | None,
    cls_id: str,
    partition: int,
    object_id: str,
    fields: tuple[str, ...],
) -> None:
    """Delete fields, or (with no FIELD) the object and its triggers."""
    with _store(redis_url, cluster) as store:
        if fields:
            result = store.delete_fields(
                cls_id, partition, _oid(object_id), [_field(f) for f in fields]
            )
            click.echo(f"version {result.version}: {result.events} event(s) queued")
        elif store.delete(cls_id, partition, _oid(object_id)):
            click.echo("deleted")
        else:
            raise click.ClickException(f"object {cls_id}/{partition}/{object_id} does not exist")


@click.group()
def triggers() -> None:
    """List, add or remove an object's triggers.

    EVENT is on_create, on_update, on_delete (KEY: a field) or on_complete, on_error (KEY: a
    function id); TARGET is cls/pid/fn (stateless) or cls/pid/objects/oid/fn (stateful).
    """


@triggers.command("list")
@_object_args
def triggers_list(
    redis_url: str | None, cluster: bool | None, cls_id: str, partition: int, object_id: str
) -> None:
    """Print every trigger of the object."""
    with _store(redis_url, cluster) as store:
        event = store.get_triggers(cls_id, partition, _oid(object_id))
    found = list(admin.list_triggers(event))
    for kind, key, slot, t in found:
        click.echo(f"{kind}[{key}].{slot} -> {admin.describe_target(t)}")
    if not found:
        click.echo("no triggers", err=True)


def _edit(
    redis_url: str | None,
    cluster: bool | None,
    cls_id: str,
    partition: int,
    object_id: str,
    add: bool,
    event: str,
    key: str,
    target: str,
    options: dict[str, str],
) -> int:
    """One atomic add or remove (``store.add_trigger`` / ``remove_trigger``): 1 when it
    changed the configuration, 0 when there was nothing to do."""
    spec = admin.parse_target(target, options)
    field: FieldKey = key if event in admin.FUNC_SLOTS else _field(key)
    with _store(redis_url, cluster) as store:
        edit = store.add_trigger if add else store.remove_trigger
        if edit(cls_id, partition, _oid(object_id), event, field, spec):
            return 1
        if not add:  # why: the same function with other req_options?
            current = store.get_triggers(cls_id, partition, _oid(object_id))
            misses = TargetEdit.of(event, field, spec, add=False).near_misses(current)
            if misses:
                shown = "; ".join(str(dict(sorted(t.req_options.items()))) for t in misses)
                raise click.ClickException(
                    f"no {event} trigger of {key} targets {target} with these options; it has "
                    f"{target} with req_options {shown}: give the same flags (--option, --when, "
                    "--include-old, --batch-max, --batch-ms, --coalesce-ms) to remove it"
                )
        return 0


def _edit_command(fn: Any) -> Any:
    for decorator in reversed(edit_args):
        fn = decorator(fn)
    return _object_args(fn)


@triggers.command("add")
@_edit_command
def triggers_add(
    redis_url: str | None,
    cluster: bool | None,
    cls_id: str,
    partition: int,
    object_id: str,
    event: str,
    key: str,
    target: str,
    options: tuple[str, ...],
    when: str | None,
    include_old: bool,
    batch_max: int | None,
    batch_ms: int | None,
    coalesce_ms: int | None,
) -> None:
    """Add TARGET to the object's EVENT trigger of KEY (atomic; nothing to do if it is there)."""
    spec = target_options(options, when, include_old, batch_max, batch_ms, coalesce_ms)
    if _edit(redis_url, cluster, cls_id, partition, object_id, True, event, key, target, spec):
        click.echo(f"added {event} {key} -> {target}")
    else:
        click.echo(f"already there: {event} {key} -> {target}")


@triggers.command("remove")
@_edit_command
def triggers_remove(
    redis_url: str | None,
    cluster: bool | None,
    cls_id: str,
    partition: int,
    object_id: str,
    event: str,
    key: str,
    target: str,
    options: tuple[str, ...],
    when: str | None,
    include_old: bool,
    batch_max: int | None,
    batch_ms: int | None,
    coalesce_ms: int | None,
) -> None:
    """Remove TARGET from the object's EVENT trigger of KEY (atomic)."""
    spec = target_options(options, when, include_old, batch_max, batch_ms, coalesce_ms)
    if not _edit(redis_url, cluster, cls_id, partition, object_id, False, event, key, target, spec):
        raise click.ClickException(f"no {event} trigger of {key} targets {target}")
    click.echo(f"removed {event} {key} -> {target}")


@click.command()
@_object_args
@click.argument("assignments", nargs=-1, metavar="[FIELD=VALUE...]")
@click.option("--delete", "deletes", multiple=True, metavar="FIELD", help="A field to delete.")
@click.option("--delete-object", is_flag=True, help="Explain deleting the whole object.")
@click.option(
    "--depth", type=click.IntRange(min=0), default=0, show_default=True, help="Depth of the write."
)
def explain(
    redis_url: str | None,
    cluster: bool | None,
    cls_id: str,
    partition: int,
    object_id: str,
    assignments: tuple[str, ...],
    deletes: tuple[str, ...],
    delete_object: bool,
    depth: int,
) -> None:
    """Dry run: which triggers a change would fire, and why. Nothing is written."""
    sets = _assignments(assignments)
    removed = [_field(d) for d in deletes]
    both = [str(k) for k in removed if k in sets]
    if both:
        raise click.UsageError(
            f"field {', '.join(both)} is both set (FIELD=VALUE) and deleted (--delete): "
            "explain one change or the other"
        )
    if delete_object and (sets or removed):
        raise click.UsageError(
            "--delete-object deletes every field: give no FIELD=VALUE or --delete"
        )
    with _store(redis_url, cluster) as store:
        record = store.get(cls_id, partition, _oid(object_id))
        max_depth = store.settings.max_trigger_depth
        note = off_note(store, cls_id, partition)
    if record is None:
        raise click.ClickException(f"object {cls_id}/{partition}/{object_id} does not exist")
    current = {k: (v, record.types.get(k, 0)) for k, v in record.entries.items()}
    written = {k: (v, 0) for k, v in sets.items()}  # FIELD=VALUE writes plain bytes
    changes = field_changes(current, written, removed, delete_all=delete_object)
    source = (cls_id, partition, object_segment(_oid(object_id)))
    for line in admin.explain(record.event, changes, depth, max_depth, source):
        click.echo(line)
    if note:
        click.echo(note)
