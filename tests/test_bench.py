"""The bench keeps working: a smoke run of ``bench --quick`` with tiny sizes produces every row
(no timed assertion: the figures of a shared machine are noise), and its cluster rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from oprc_redis_events.dev.bench import Sizes
from oprc_redis_events.dev.bench_cluster import cluster_rows
from oprc_redis_events.dev.bench_run import ROWS, table, to_json

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]
MACHINE = {"cores", "cpu_model", "redis_server", "redis_py", "hiredis", "eclipse_zenoh", "python"}


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_a_quick_bench_gives_every_row_with_positive_numbers(tmp_path: Path) -> None:
    before = children()
    out = subprocess.run(
        [*CLI, "bench", "--quick", "--rss-triggers", "400", "--json", str(tmp_path / "b.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    rows = report["rows"]
    assert [r["name"] for r in rows] == list(ROWS)
    for row in rows:
        assert row["measured"] > 0 and row["baseline"] > 0, row
        assert row["ratio"] == pytest.approx(row["measured"] / row["baseline"], rel=1e-3)
        assert row["unit"] and row["better"] in ("higher", "lower"), row
    assert set(report["machine"]) == MACHINE and report["machine"]["cores"] == os.cpu_count()
    header = out.stdout.splitlines()[0].split()
    assert header[:4] == ["benchmark", "measured", "baseline", "ratio"]
    assert all(f"\n{name} " in out.stdout for name in ROWS)
    assert f"machine: {os.cpu_count()} CPU core(s)" in out.stdout
    assert "eclipse-zenoh" in out.stdout and "hiredis" in out.stdout
    for name in ("write", "worker", "latency_p50/p99/p999", "worker_rss", "memory_config_index"):
        assert f"bench: {name}" in out.stderr  # a progress line as each starts and ends
    assert out.stderr.count(" done in ") >= 10
    assert children() == before  # the private Redis, the worker and the helpers are stopped


def test_the_cluster_rows_compare_one_redis_with_three_primaries(redis_url: str) -> None:
    before = children()
    rows = cluster_rows(redis_url, quick=True)
    names = ["cluster_write", "cluster_write_pipelined", "cluster_dispatch"]
    assert [r.name for r in rows] == names
    assert all(r.baseline > 0 and r.measured > 0 for r in rows)
    assert "the ratio says little" in table(rows)
    assert [r["name"] for r in json.loads(to_json(rows))["rows"]] == [r.name for r in rows]
    assert children() == before  # the cluster's nodes are stopped
    assert Sizes(quick=True).rss < Sizes().rss < Sizes(full=True).rss == 1_000_000


@pytest.mark.quick
def test_the_bench_options_are_those_the_readme_names() -> None:
    from click.testing import CliRunner

    from oprc_redis_events.cli import main

    shown = CliRunner().invoke(main, ["bench", "--help"]).output
    for option in ("--quick", "--full", "--rate", "--rss-triggers", "--json", "--redis-url"):
        assert option in shown, option
    assert Sizes(rate=5000).latency_writes == 25_000 and Sizes(quick=True).rss == 2000
    bad = CliRunner().invoke(main, ["bench", "--rate", "0"])
    assert bad.exit_code != 0 and "--rate" in bad.output


def test_sigterm_stops_everything_the_bench_started() -> None:
    with subprocess.Popen(
        [*CLI, "bench", "--quick"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as bench:
        assert bench.stderr is not None
        for line in bench.stderr:  # the worker process and the subscriber are up
            if line.startswith("bench: new_partition_first_event"):
                break
        started = psutil.Process(bench.pid).children(recursive=True)
        assert len(started) >= 3  # redis-server, subscriber, worker
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(60) == 130
        assert "interrupted: everything started was stopped" in bench.stderr.read()
    _, alive = psutil.wait_procs(started, timeout=10)
    assert not alive
