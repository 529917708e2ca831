"""Shared helpers of the benchmarks (commands that print figures; not tests).

* :class:`StandIn` runs the local stand-in (PostgreSQL + the PostgREST-protocol gateway) as
  ``parlant-supabase-sync local up`` in a **child process**, so the benchmark's own process CPU
  (``time.process_time``) is the client's alone.
* :class:`Portal` keeps one event loop per anyio backend running in a thread, so facade batches
  run on a warm loop with warm worker threads, timed inside the loop.
* :func:`interleave` runs the variants' batches in rotating order, round after round, so drift
  and noise from other processes hit every variant alike; figures are medians over rounds.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from typing_extensions import Self

__all__ = [
    "Portal",
    "Results",
    "Sample",
    "StandIn",
    "interleave",
    "machine_line",
    "measure",
    "measure_async",
    "print_table",
    "quiet_logging",
    "ratio",
]

# The child: the stand-in (`LocalSupabase`) serving until its stdin closes; one JSON command
# per line on stdin ({"sql": …} or {"max_rows": n}), one JSON answer per line on stdout.
_CHILD = """
import json, sys
from parlant_supabase_sync.local import LocalSupabase
with LocalSupabase(max_rows=int(sys.argv[1])) as stack:
    print(json.dumps(stack.env()), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if "sql" in command:
                stack.execute_sql(command["sql"])
            if "max_rows" in command:
                stack.set_max_rows(command["max_rows"])
            print(json.dumps({"ok": True}), flush=True)
        except Exception as exc:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
"""


class StandIn:
    """The stand-in (``LocalSupabase``) in a child process: ``with StandIn() as s: s.env``.

    The child ends when this process closes its stdin (on exit, or if this process dies).
    """

    def __init__(self, *, max_rows: int = 1000) -> None:
        self._argv = [sys.executable, "-c", _CHILD, str(max_rows)]
        self._process: subprocess.Popen[str] | None = None
        self.env: dict[str, str] = {}

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            self._argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._process.stdout is not None
        first = self._process.stdout.readline()
        if not first:
            self.__exit__()
            raise RuntimeError("the stand-in did not start (try `parlant-supabase-sync local up`)")
        self.env = json.loads(first)
        return self

    def __exit__(self, *exc_info: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()  # the child leaves its `with LocalSupabase()` and cleans up
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            process.wait(30)

    def _command(self, **command: Any) -> None:
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(command) + "\n")
        process.stdin.flush()
        answer = json.loads(process.stdout.readline() or '{"error": "the stand-in exited"}')
        if "error" in answer:
            raise RuntimeError(f"stand-in: {answer['error']}")

    @property
    def url(self) -> str:
        return self.env["SUPABASE_URL"]

    @property
    def secret_key(self) -> str:
        return self.env["SUPABASE_SECRET_KEY"]

    def settings(self, **overrides: Any) -> Any:
        """``SupabaseSettings`` for this stand-in with the secret key."""
        from parlant_supabase_sync.settings import SupabaseSettings

        return SupabaseSettings(url=self.url, key=self.secret_key, **overrides)

    def execute_sql(self, sql: str, *, visible: Sequence[str] = ()) -> None:
        """Run ``sql`` as superuser (it returns once the schema cache has reloaded), then check
        that every table in ``visible`` is served."""
        self._command(sql=sql)
        headers = {"apikey": self.secret_key}
        with httpx.Client(trust_env=False) as http:
            for table in visible:
                answer = http.get(f"{self.url}/rest/v1/{table}?select=id&limit=0", headers=headers)
                if answer.status_code != 200:
                    raise RuntimeError(f"table {table} is not served (HTTP {answer.status_code})")

    def set_max_rows(self, rows: int) -> None:
        self._command(max_rows=rows)


@dataclass
class Sample:
    """Per-operation figures of one batch: wall seconds and client process CPU seconds."""

    wall: float
    cpu: float


def measure(batch: Callable[[], int]) -> Sample:
    """Time ``batch()`` (it returns how many operations it ran) in the calling thread."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    count = batch()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Sample(wall / count, cpu / count)


async def measure_async(batch: Callable[[], Awaitable[int]]) -> Sample:
    """Time ``await batch()`` inside the running event loop (worker threads' CPU included)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    count = await batch()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Sample(wall / count, cpu / count)


class Portal:
    """One anyio event loop per backend in its own thread (``portal.call(async_fn, *args)``)."""

    def __init__(self, backend: str) -> None:
        from anyio.from_thread import start_blocking_portal

        self.backend = backend
        self._context = start_blocking_portal(backend)
        self._portal = self._context.__enter__()

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return self._portal.call(fn, *args)

    def close(self) -> None:
        self._context.__exit__(None, None, None)


@dataclass
class Results:
    """Samples per (row, variant)."""

    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)

    def add(self, row: str, variant: str, sample: Sample) -> None:
        self.samples.setdefault((row, variant), []).append(sample)

    def median(self, row: str, variant: str, what: str) -> float:
        return statistics.median(getattr(s, what) for s in self.samples[(row, variant)])

    def median_ratio(self, row: str, variant: str, base: str, what: str) -> float:
        """The median over rounds of ``variant ÷ base`` measured in the same round (samples
        added round by round): drift between rounds cancels out."""
        pairs = zip(self.samples[(row, variant)], self.samples[(row, base)])
        return statistics.median(getattr(v, what) / getattr(b, what) for v, b in pairs)


def interleave(
    variants: Sequence[str], rounds: int, run_round: Callable[[str, int], None]
) -> None:
    """Call ``run_round(variant, round)`` for every variant, rotating the order each round."""
    for number in range(rounds):
        shift = number % len(variants)
        for variant in [*variants[shift:], *variants[:shift]]:
            run_round(variant, number)


def print_table(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    out: Any = None,
) -> None:
    """A plain-text table, columns right-aligned but the first."""
    out = out or sys.stdout
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        )

    print(title, file=out)
    print(line(header), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print(line(row), file=out)
    print(file=out)


@contextmanager
def quiet_logging() -> Iterator[None]:
    """Silence the package's and httpx's loggers (log records cost CPU the figures would show)."""
    import logging

    names = ("parlant_supabase_sync", "httpx", "httpcore", "bench")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def machine_line() -> str:
    """One line naming the machine's load, for the header of a run."""
    load = os.getloadavg()
    return (
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start"
    )


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}" if denominator else "-"
