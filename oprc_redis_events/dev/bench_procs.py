"""The bench's processes: the subscriber, raw publishers, writers and workers of
:mod:`.bench_sub` and the CLI worker, each started here and always stopped."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from ..errors import OprcEventsError
from .servers import free_port

__all__ = ["Proc", "Subscriber", "processes", "rss_bytes"]

HELPER = [sys.executable, "-m", "oprc_redis_events.dev.bench_sub"]
CLI = [sys.executable, "-m", "oprc_redis_events.cli"]


class Proc:
    """A child process spoken to by lines on its stdin/stdout."""

    def __init__(self, args: list[str], *, talk: bool = True) -> None:
        pipe = subprocess.PIPE if talk else subprocess.DEVNULL
        # the user's settings (a Zenoh listen address, events off, ...) stay out of the bench
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPRC_EVENTS_", "ODGM_"))}
        self.process = subprocess.Popen(
            args, stdin=pipe, stdout=pipe, stderr=subprocess.DEVNULL, text=True, env=env
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, line: str) -> None:
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write(line + "\n")
        stdin.flush()

    def expect(self, word: str, timeout: float = 120.0) -> list[str]:
        """The next line, which must start with ``word``: its other words."""
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        if not select.select([stdout], [], [], timeout)[0]:
            raise OprcEventsError(f"bench: no {word!r} from a helper process in {timeout:.0f} s")
        line = stdout.readline()
        if not line.startswith(word):
            raise OprcEventsError(f"bench helper {self.process.args!r} said {line[:80]!r}")
        return line.split()[1:]

    def pause(self, paused: bool) -> None:
        os.kill(self.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class Subscriber(Proc):
    """The subscriber process, listening on its own loopback endpoint."""

    def __init__(self) -> None:
        self.endpoint = f"tcp/127.0.0.1:{free_port()}"
        super().__init__([*HELPER, "listen", self.endpoint])
        self.expect("ready")

    def count(self, n: int) -> None:
        self.send(f"count {n}")
        self.expect("armed", 30)

    def answer(self, word: str, timeout: float) -> list[str]:
        """The answer to the command in hand; after ``timeout`` s, what arrived by then."""
        try:
            return self.expect(word, timeout)
        except OprcEventsError:
            self.send("flush 0")
            return self.expect(word, 10)

    def counted(self, timeout: float = 120.0) -> tuple[int, int, int, int]:
        """(first receipt ns, last receipt ns, bytes, messages) of the ``count`` in hand."""
        first, last, size, count = self.answer("done", timeout)
        return int(first), int(last), int(size), int(count)

    def latencies(self, n: int) -> None:
        self.send(f"lat {n}")
        self.expect("armed", 30)

    def latencies_ns(self, timeout: float = 120.0) -> list[int]:
        return [int(v) for v in self.answer("lat", timeout)]


@contextlib.contextmanager
def processes() -> Iterator[list[Proc]]:
    """A list to put started processes in: every one is stopped at the end."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            proc.stop()


def cli_worker(url: str, group: str, endpoint: str, *extra: str) -> Proc:
    """The worker as users run it: ``oprc-redis-events worker`` (JSON payloads)."""
    args = [*CLI, "worker", "--redis-url", url, "--group", group, "--zenoh-connect", endpoint]
    return Proc([*args, "--log-level", "error", *extra], talk=False)


def own_worker(
    url: str, group: str, endpoint: str, cls_id: str, partitions: int, *extra: str
) -> Proc:
    """A worker process serving only the bench's class (on a Redis the user gave)."""
    args = [*HELPER, "worker", url, group, endpoint, cls_id, str(partitions), *extra]
    return Proc(args, talk=False)


def rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid`` (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # not Linux: psutil when installed (the dev extra), else unknown
        try:
            import psutil  # type: ignore[import-untyped]

            return int(psutil.Process(pid).memory_info().rss)
        except ImportError:
            return 0
    return 0


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise OprcEventsError(f"bench: timed out waiting for {what}")
        time.sleep(0.02)
