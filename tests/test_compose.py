"""compose.yaml is valid by the compose-spec schema, and runs real commands of this CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from oprc_redis_events.cli import main

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    return subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(path)], capture_output=True, text=True
    )


def test_compose_file_is_valid_offline() -> None:
    out = validate(COMPOSE)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_validator_rejects_an_unknown_key(tmp_path: Path) -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    doc["services"]["worker"]["no_such_key"] = True
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(doc))
    assert validate(broken).returncode != 0


def _built_services() -> list[tuple[str, list[str]]]:
    doc = yaml.safe_load(COMPOSE.read_text())
    return [(name, svc["command"]) for name, svc in doc["services"].items() if "build" in svc]


@pytest.mark.parametrize(("name", "command"), _built_services(), ids=lambda v: str(v)[:20])
def test_each_service_runs_a_real_cli_command(name: str, command: list[str]) -> None:
    sub = main.get_command(click.Context(main), command[0])
    assert sub is not None, f"{name}: {command[0]!r} is not an oprc-redis-events command"
    ctx = sub.make_context(command[0], list(command[1:]))  # raises on an unknown option
    if command[0] == "serve":  # the function it serves exists
        import importlib

        module, _, attr = ctx.params["target"].partition(":")
        assert callable(getattr(importlib.import_module(module), attr))


def test_compose_services_and_health_checks() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    default = {name for name, svc in services.items() if "profiles" not in svc}
    assert default == {"redis", "zenoh", "worker", "functions", "writer"}
    assert services["zenoh"]["image"].startswith("eclipse/zenoh:")
    redis_cmd = services["redis"]["command"]
    assert "--appendonly" in redis_cmd and "--notify-keyspace-events" in redis_cmd
    for name in ("redis", "worker", "functions"):
        assert "healthcheck" in services[name], name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["oprc-redis-events"]' in dockerfile


CLUSTER_SERVICES = {
    "redis-node-1",
    "redis-node-2",
    "redis-node-3",
    "cluster-init",
    "worker-cluster",
    "writer-cluster",
}


def test_the_cluster_profile() -> None:
    """Three cluster-enabled Redis 7 nodes, a one-shot ``redis-cli --cluster create`` (a
    shell script that parses), and a worker and a writer with --cluster."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    profiled = {name for name, svc in services.items() if "profiles" in svc}
    assert profiled == CLUSTER_SERVICES
    assert all(services[name]["profiles"] == ["cluster"] for name in profiled)
    for node in ("redis-node-1", "redis-node-2", "redis-node-3"):
        command = " ".join(services[node]["command"])
        assert services[node]["image"] == "redis:7" and "--cluster-enabled yes" in command
        assert "--notify-keyspace-events Khgxe" in command  # keyspace capture on every primary
    init = services["cluster-init"]
    script = init["command"][2].replace("$$", "$")  # compose's escape of a literal $
    assert init["command"][:2] == ["sh", "-c"] and "--cluster create" in script
    assert all(f"getent hosts redis-node-{i}" in script for i in (1, 2, 3))
    assert subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode == 0
    assert set(init["depends_on"]) == {"redis-node-1", "redis-node-2", "redis-node-3"}
    worker = services["worker-cluster"]
    assert worker["depends_on"]["cluster-init"] == {"condition": "service_completed_successfully"}
    for name in ("worker-cluster", "writer-cluster"):
        assert "--cluster" in services[name]["command"], name
