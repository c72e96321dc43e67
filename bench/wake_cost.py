"""What waking up costs on this machine (not part of the package or the tests).

The same small piece of Python (about 50 us) run back to back, then with a sleep between
runs: its thread CPU time per run grows with the sleep, as the caches, branch predictors
and (in a virtual machine) the virtual CPU go cold.  A worker serving a steady, moderate
rate wakes for every few entries, so on such a machine its CPU per entry is far above what
the same work costs at full load (README: Latency).

    .venv/bin/python -m bench.wake_cost
"""

from __future__ import annotations

import json
import time


def work() -> dict[str, str]:
    return {str(i): json.dumps([i, "x" * 10]) for i in range(10)}


def main() -> None:
    for gap_ms in (0.0, 0.2, 1.0, 5.0):
        runs = 400
        start = time.thread_time()
        for _ in range(runs):
            work()
            if gap_ms:
                time.sleep(gap_ms / 1000)
        cpu_us = (time.thread_time() - start) / runs * 1e6
        print(f"sleep {gap_ms:>3} ms between runs: {cpu_us:6.0f} us thread CPU per run")


if __name__ == "__main__":
    main()
