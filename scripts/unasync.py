#!/usr/bin/env python3
"""Generate the synchronous modules from their asyncio originals (as httpcore's unasync).

    python scripts/unasync.py          write the generated files
    python scripts/unasync.py --check  exit 1 when a generated file is stale

Only the asyncio file is edited by hand; the rules below turn it into the sync one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "oprc_redis_events" / "client"

# (asyncio original, generated sync module), in oprc_redis_events/client/
FILES = [
    ("aio/store.py", "sync_generated/store.py"),
    ("aio/wrapper.py", "sync_generated/wrapper.py"),
    ("aio/trigger_edits.py", "sync_generated/trigger_edits.py"),
    ("aio/cluster_pipeline.py", "sync_generated/cluster_pipeline.py"),
    ("aio/batch.py", "sync_generated/batch.py"),
]

RULES: list[tuple[str, str]] = [
    (r"\bAsyncTriggerEdits\b", "TriggerEdits"),
    (r"\bAsyncWriteBatch\b", "WriteBatch"),
    (r"\bAsyncObjectStore\b", "ObjectStore"),
    (r"\basync_redis_client\b", "redis_client"),
    (r"\bAsyncEventedRedis\b", "EventedRedis"),
    (r"\bAsyncEventedPipeline\b", "EventedPipeline"),
    (r"\bAsyncEventedClusterPipeline\b", "EventedClusterPipeline"),
    (r"\b(initialized|send_to_node|slot_of|check_access)_async\b", r"\1"),
    (r"\bredis\.asyncio\.client\.Pipeline\b", "redis.client.Pipeline"),
    (r"\bredis\.asyncio\.Redis\b", "redis.Redis"),
    (r"^import redis\.asyncio\n", ""),
    (r"\bfunctions\.run_blocking\b", "functions.run_now"),
    (r"\bcoroutines=True\b", "coroutines=False"),
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    (r"\.aclose\(\)", ".close()"),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"redis-py client \(asyncio\)", "redis-py client (sync)"),
]

HEADER = "# Generated from {source} by scripts/unasync.py (make unasync): do not edit.\n"


def generate(source: str) -> str:
    text = (PACKAGE / source).read_text()
    for pattern, replacement in RULES:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    text = HEADER.format(source=source) + text
    for command in (["check", "--fix", "--exit-zero"], ["format"]):
        text = subprocess.run(
            [
                sys.executable,
                "-m",
                "ruff",
                *command,
                "--stdin-filename",
                f"oprc_redis_events/client/{source}",
                "-",
            ],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    return text


def main(argv: list[str]) -> int:
    stale = []
    for source, target in FILES:
        if not (PACKAGE / source).exists():
            continue
        text = generate(source)
        path = PACKAGE / target
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(target)
        else:
            path.write_text(text)
    if stale:
        print(f"stale generated modules: {', '.join(stale)} (run `make unasync`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
