"""Running every row of the bench in order, and its report: the table, the JSON and the
machine they ran on."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from importlib import metadata
from typing import Any

import redis

from ..config import Settings
from ..connect.redis_client import redis_client
from .bench import Result, Sizes

__all__ = ["ROWS", "machine", "run_all", "table", "to_json"]

#: every row of a run on one Redis, in the order of the table
ROWS = (
    "write",
    "write_pipelined",
    "write_batch",
    "write_events_disabled",
    "payload_json",
    "payload_protobuf",
    "payload_json_new_objects",
    "payload_protobuf_new_objects",
    "match_redis_time",
    "dispatch",
    "worker",
    "worker_x2",
    "latency_p50",
    "latency_p99",
    "latency_p999",
    "new_partition_first_event",
    "write_triggers_1",
    "write_triggers_10",
    "write_triggers_100",
    "write_targets_1",
    "write_targets_10",
    "write_targets_100",
    "write_condition",
    "condition_eval",
    "worker_partitions_1",
    "worker_partitions_16",
    "worker_partitions_256",
    "memory_config_index",
    "memory_shadow",
    "outbox_length",
    "worker_rss",
)


def run_all(url: str, sizes: Sizes, *, cluster: bool, private: bool) -> list[Result]:
    """Every row on the Redis at ``url`` (the end-to-end rows first, while it holds nothing
    but their class: the CLI worker serves every outbox of a private Redis)."""
    from .bench_e2e import e2e_rows
    from .bench_memory import memory_rows
    from .bench_worker import worker_rows
    from .bench_write import write_rows

    client = redis_client(url, cluster=cluster)
    base = Settings.from_env({}, redis_url=url, cluster=cluster, ack_delay_ms=0)
    try:
        rows = e2e_rows(url, client, sizes, private=private, cluster=cluster)
        rows += write_rows(client, sizes)
        rows += worker_rows(client, base, sizes)
        rows += memory_rows(client, sizes)
        info = machine(client)
    finally:
        client.close()
    order = {name: i for i, name in enumerate(ROWS)}
    rows.sort(key=lambda r: order.get(r.name, len(order)))
    for row in rows:
        row.extra.setdefault("machine", info)
    return rows


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(client: redis.Redis) -> dict[str, Any]:
    """The machine and versions a run measured."""
    server: Any = client.info("server")
    if "redis_version" not in server:  # a cluster client: one entry per node
        server = next(iter(server.values()))
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "redis_server": str(server.get("redis_version", "?")),
        "redis_py": _version("redis"),
        "hiredis": _version("hiredis"),
        "eclipse_zenoh": _version("eclipse-zenoh"),
        "python": platform.python_version(),
    }


def _machine_line(info: dict[str, Any]) -> str:
    return (
        f"machine: {info['cores']} CPU core(s) (os.cpu_count()), {info['cpu_model']}; "
        f"Redis {info['redis_server']}, redis-py {info['redis_py']}, hiredis {info['hiredis']}, "
        f"eclipse-zenoh {info['eclipse_zenoh']}, Python {info['python']}"
    )


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def table(results: list[Result]) -> str:
    head = f"{'benchmark':<26} {'measured':>11} {'baseline':>11} {'ratio':>7}  {'unit':<13} goal"
    lines = [head, "-" * 100]
    for r in results:
        lines.append(
            f"{r.name:<26} {_number(r.measured):>11} {_number(r.baseline):>11} {r.ratio:>7.2f}  "
            f"{r.unit:<13} {r.goal}"
        )
    lines += ["", "what each row measures (measured vs baseline):"]
    lines += [f"  {r.name}: {r.measured_what} vs {r.baseline_what}" for r in results]
    info = next((r.extra["machine"] for r in results if "machine" in r.extra), None)
    lines.append(_machine_line(info) if info else f"machine: {os.cpu_count()} CPU core(s)")
    if any(r.name.startswith("cluster_") for r in results):
        lines.append(
            "cluster rows: the three primaries, the bench and its worker share those cores, "
            "so on a small machine the ratio says little about a cluster of real machines"
        )
    return "\n".join(lines)


def to_json(results: list[Result]) -> str:
    """``{"machine": {...}, "rows": [...]}``: each row with its ratio and the core count."""
    info: dict[str, Any] = next((r.extra["machine"] for r in results if "machine" in r.extra), {})
    rows = []
    for r in results:
        extra = {k: v for k, v in r.extra.items() if k != "machine"}
        row = {**asdict(r), "extra": extra, "ratio": r.ratio}
        rows.append({**row, "cpu_count": os.cpu_count()})
    return json.dumps({"machine": info, "rows": rows}, indent=2)
