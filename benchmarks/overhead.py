"""Cost per call of every single-document operation: raw httpx vs the sync core vs the facade.

    .venv/bin/python benchmarks/overhead.py               # 20 rounds of 20 operations each
    .venv/bin/python benchmarks/overhead.py --rounds 40 --batch 25
    .venv/bin/python benchmarks/overhead.py --hops       # only the thread hop's options

Starts the local stand-in in a child process (so this process's CPU is the client's alone),
fills one collection with 1,000 documents, then runs interleaved rounds. In each round every
variant runs every operation ``--batch`` times on its own fresh documents, one operation's
batches back to back for all variants (their order rotating round by round):

* ``raw``: a bare ``httpx.Client`` (configured like the adapter's: HTTP/1.1, same pool,
  timeouts and User-Agent) sending the identical request (same method, URL, headers and body;
  checked before the run) and reading the JSON answer, in the calling thread;
* ``core``: ``SyncDocumentCollection`` in the calling thread;
* ``facade-asyncio`` / ``facade-trio``: ``SupabaseDocumentCollection`` awaited on a running
  event loop (one thread hop per call through the limiter).

Figures are medians over rounds of the per-operation mean of a batch: wall milliseconds, and
client CPU microseconds (``time.process_time`` of this process: every thread of the client,
none of the stand-in's). A ratio is the median of each round's own ratio to ``raw``. Every
variant sends exactly one request per operation (counted and checked).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypedDict
from urllib.parse import quote

import httpx
from _bench import (
    Portal,
    Results,
    Sample,
    StandIn,
    machine_line,
    measure,
    measure_async,
    print_table,
    quiet_logging,
)

PREFIX = "bench_overhead_"
COLLECTION = "docs"
TABLE = PREFIX + COLLECTION
FILL = 1000
SESSIONS = 50
OPERATIONS = ("find_one", "find", "insert_one", "update_one", "delete_one", "count")
RUN_ORDER = ("insert_one", "find_one", "find", "update_one", "count", "delete_one")
LABELS = {
    "find_one": "find_one by id",
    "find": "find, filter on customer_id",
    "insert_one": "insert_one",
    "update_one": "update_one by id",
    "delete_one": "delete_one by id",
    "count": "count, filter on session_id (facade: find limit=0)",
}
VARIANTS = ("raw", "core", "facade-asyncio", "facade-trio")
GOALS = {"find_one": (1.10, 1.35), "delete_one": (1.10, 1.35), "insert_one": (1.10, 1.35)}


class Doc(TypedDict, total=False):
    id: str
    version: str
    creation_utc: str
    session_id: str
    customer_id: str
    n: int


def document(doc_id: str, number: int) -> dict[str, Any]:
    return {
        "id": doc_id,
        "version": "0.1.0",
        "creation_utc": f"2025-01-01T00:00:00.{number:07d}+00:00",
        "session_id": f"s{number % SESSIONS}",
        "customer_id": f"c-{doc_id}",
        "n": number,
        "kind": "message",
        "data": {"message": "hello " * 10, "participant": {"id": "a1", "name": "Ann"}},
    }


# --- raw: the identical request with a bare httpx.Client ------------------------------------


class Raw:
    """The requests the adapter sends, hand-written over a bare ``httpx.Client``."""

    def __init__(self, settings: Any) -> None:
        from parlant_supabase_sync.transport import auth_headers, build_http_client

        self.http = build_http_client(settings)  # a plain httpx.Client, configured alike
        self.rest = settings.rest_url
        self.table_url = f"{self.rest}/{TABLE}"
        self.write_url = f"{self.rest}/rpc/parlant_write"
        import postgrest

        client_info = (
            f"supabase-py/postgrest-py v{postgrest.__version__}; platform={platform.system()}"
            f"; platform-version={platform.release()}; runtime=python"
            f"; runtime-version={platform.python_version()}"
        )
        schema = settings.db_schema
        profile = {"Accept-Profile": schema, "Content-Profile": schema}
        self.get_headers = {"X-Client-Info": client_info, **auth_headers(settings), **profile}
        self.count_headers = {"Prefer": "count=exact", **self.get_headers}
        self.post_headers = {**self.get_headers, "Content-Type": "application/json"}

    def close(self) -> None:
        self.http.close()

    def _rows(self, response: httpx.Response) -> Any:
        if not response.is_success:
            raise RuntimeError(f"raw request failed: HTTP {response.status_code}")
        return json.loads(response.content)

    def _write(self, operation: str, args: dict[str, Any]) -> Any:
        body = {
            "p_request_id": uuid.uuid4().hex,
            "p_table": TABLE,
            "p_operation": operation,
            "p_args": args,
        }
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        response = self.http.post(self.write_url, content=content, headers=self.post_headers)
        return self._rows(response)

    def find_one(self, doc_id: str) -> Any:
        url = f"{self.table_url}?select=data&id=eq.{quote(doc_id, safe='')}"
        rows = self._rows(self.http.get(url, headers=self.get_headers))
        return rows[0]["data"] if rows else None

    def find(self, customer: str) -> Any:
        url = (
            f"{self.table_url}?select=id%2Ccreation_utc%2Cdata&customer_id=eq."
            f"{quote(customer, safe='')}&order=creation_utc.asc%2Cid.asc&limit=1000"
        )
        response = self.http.get(url, headers=self.count_headers)
        rows = self._rows(response)
        total = int(response.headers["content-range"].rpartition("/")[2])
        return [row["data"] for row in rows], total

    def count(self, session: str) -> int:
        url = f"{self.table_url}?select=id&session_id=eq.{quote(session, safe='')}&limit=0"
        response = self.http.get(url, headers=self.count_headers)
        self._rows(response)
        return int(response.headers["content-range"].rpartition("/")[2])

    def insert_one(self, doc: dict[str, Any]) -> Any:
        return self._write("insert", {"document": doc})

    def update_one(self, doc_id: str, params: dict[str, Any]) -> Any:
        return self._write("merge", {"id": doc_id, "params": params, "upsert": False})

    def delete_one(self, doc_id: str) -> Any:
        return self._write("delete", {"id": doc_id})


def raw_batch(raw: Raw, operation: str, docs: Sequence[dict[str, Any]]) -> Callable[[], int]:
    def run() -> int:
        for doc in docs:
            if operation == "insert_one":
                raw.insert_one(doc)
            elif operation == "find_one":
                raw.find_one(doc["id"])
            elif operation == "find":
                raw.find(doc["customer_id"])
            elif operation == "update_one":
                raw.update_one(doc["id"], {"n": doc["n"] + 1})
            elif operation == "count":
                raw.count(doc["session_id"])
            else:
                raw.delete_one(doc["id"])
        return len(docs)

    return run


# --- the adapter: core and facade -------------------------------------------------------------


def core_batch(
    collection: Any, operation: str, docs: Sequence[dict[str, Any]]
) -> Callable[[], int]:
    def run() -> int:
        for doc in docs:
            if operation == "insert_one":
                collection.insert_one(doc)
            elif operation == "find_one":
                collection.find_one({"id": {"$eq": doc["id"]}})
            elif operation == "find":
                collection.find({"customer_id": {"$eq": doc["customer_id"]}})
            elif operation == "update_one":
                collection.update_one({"id": {"$eq": doc["id"]}}, {"n": doc["n"] + 1})
            elif operation == "count":
                collection.count({"session_id": {"$eq": doc["session_id"]}})
            else:
                collection.delete_one({"id": {"$eq": doc["id"]}})
        return len(docs)

    return run


async def facade_batch(collection: Any, operation: str, docs: Sequence[dict[str, Any]]) -> Sample:
    async def run() -> int:
        for doc in docs:
            if operation == "insert_one":
                await collection.insert_one(doc)
            elif operation == "find_one":
                await collection.find_one({"id": {"$eq": doc["id"]}})
            elif operation == "find":
                await collection.find({"customer_id": {"$eq": doc["customer_id"]}})
            elif operation == "update_one":
                await collection.update_one({"id": {"$eq": doc["id"]}}, {"n": doc["n"] + 1})
            elif operation == "count":
                # Parlant's collections have no count(): find with limit 0 sends the same request.
                await collection.find({"session_id": {"$eq": doc["session_id"]}}, limit=0)
            else:
                await collection.delete_one({"id": {"$eq": doc["id"]}})
        return len(docs)

    return await measure_async(run)


async def open_facade(settings: Any) -> tuple[Any, Any]:
    from parlant_supabase_sync.facade import SupabaseDocumentDatabase

    async def keep(doc: Any) -> Any:
        return doc

    database = SupabaseDocumentDatabase(
        logging.getLogger("bench"), table_prefix=PREFIX, settings=settings
    )
    return database, await database.get_or_create_collection(COLLECTION, Doc, keep)


# --- the request identity check ---------------------------------------------------------------


def _shape(request: httpx.Request) -> tuple[Any, ...]:
    # Every write carries a fresh request id (32 hex digits, so Content-Length still compares).
    body = re.sub(rb'"p_request_id":"[0-9a-f]{32}"', b'"p_request_id":"*"', request.content)
    return request.method, str(request.url), request.headers.raw, body


def check_identical(raw: Raw, core_db: Any, collection: Any) -> None:
    """Every operation's raw request equals the core's (the request id aside)."""
    seen: dict[str, list[httpx.Request]] = {"raw": [], "core": []}
    clients = {"raw": raw.http, "core": core_db.transport.http}
    doc = document("identity-check", 1)
    for name, client in clients.items():
        client.event_hooks["request"].append(seen[name].append)
        batch = partial(raw_batch, raw) if name == "raw" else partial(core_batch, collection)
        for operation in RUN_ORDER:
            batch(operation, [doc])()
        client.event_hooks["request"].clear()
    for name, requests in seen.items():
        if len(requests) != len(RUN_ORDER):
            raise SystemExit(f"{name}: {len(requests)} requests for {len(RUN_ORDER)} operations")
    for operation, raw_request, core_request in zip(RUN_ORDER, seen["raw"], seen["core"]):
        if _shape(raw_request) != _shape(core_request):
            raise SystemExit(
                f"raw and core requests differ for {operation}:\n  raw  {_shape(raw_request)}"
                f"\n  core {_shape(core_request)}"
            )


# --- the thread hop's options ------------------------------------------------------------------

HOP_OPTIONS = (
    "no hop (called on the loop)",
    "run_sync(fn, *args, limiter=…)",
    "run_sync(partial(fn, *args), limiter=…)",
    "… abandon_on_cancel=True",
    "… default limiter",
)


def _blocking(seconds: float) -> float:
    time.sleep(seconds)  # stands for a request: the GIL is released while waiting
    return seconds


async def hop_batch(option: str, limiter: Any, calls: int) -> Sample:
    import anyio.to_thread

    async def run() -> int:
        for _ in range(calls):
            if option == HOP_OPTIONS[0]:
                _blocking(0.002)
            elif option == HOP_OPTIONS[1]:
                await anyio.to_thread.run_sync(_blocking, 0.002, limiter=limiter)
            elif option == HOP_OPTIONS[2]:
                await anyio.to_thread.run_sync(partial(_blocking, 0.002), limiter=limiter)
            elif option == HOP_OPTIONS[3]:
                await anyio.to_thread.run_sync(
                    _blocking, 0.002, limiter=limiter, abandon_on_cancel=True
                )
            else:
                await anyio.to_thread.run_sync(_blocking, 0.002)
        return calls

    sample = await measure_async(run)
    return Sample(sample.wall - 0.002, sample.cpu)


async def _limiter() -> Any:
    import anyio

    return anyio.CapacityLimiter(32)


def hops(rounds: int) -> None:
    """What each way of crossing to a worker thread costs around a 2 ms blocking call."""
    results = Results()
    for backend in ("asyncio", "trio"):
        portal = Portal(backend)
        try:
            limiter = portal.call(_limiter)
            for number in range(rounds + 1):
                shift = number % len(HOP_OPTIONS)
                for option in [*HOP_OPTIONS[shift:], *HOP_OPTIONS[:shift]]:
                    sample = portal.call(hop_batch, option, limiter, 100)
                    if number:  # the first round warms the worker threads
                        results.add(option, backend, sample)
        finally:
            portal.close()
    rows = [
        [option]
        + [
            f"{results.median(option, backend, what) * 1e6:,.0f}"
            for backend in ("asyncio", "trio")
            for what in ("wall", "cpu")
        ]
        for option in HOP_OPTIONS
    ]
    header = ["hop (2 ms blocking call)", "asyncio wall µs", "CPU µs", "trio wall µs", "CPU µs"]
    print_table(
        f"thread hop per call, beyond the call itself (median of {rounds} rounds x 100 calls)",
        header,
        rows,
    )


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    parser.add_argument("--batch", type=int, default=20, help="operations per batch (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="rounds run first and dropped")
    parser.add_argument("--hops", action="store_true", help="measure only the hop's options")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.batch < 1 or args.warmup < 0:
        parser.error("--rounds and --batch must be >= 1, --warmup >= 0")
    if args.hops:
        print(machine_line())
        hops(args.rounds)
        return 0

    from parlant_supabase_sync.core import SyncDocumentDatabase
    from parlant_supabase_sync.ddl import generate_functions, generate_schema

    print(__doc__.split("\n\n")[0])
    print(machine_line())
    started = time.perf_counter()
    with quiet_logging(), StandIn() as stand_in:
        stand_in.execute_sql(
            generate_functions() + generate_schema({PREFIX: (COLLECTION,)}), visible=[TABLE]
        )
        settings = stand_in.settings()
        core_db = SyncDocumentDatabase(
            settings, table_prefix=PREFIX, logger=logging.getLogger("bench")
        )
        core = core_db.get_or_create_collection(COLLECTION, Doc, lambda doc: doc)
        core.put_many([document(f"fill-{i:05d}", i) for i in range(FILL)])
        raw = Raw(settings)
        check_identical(raw, core_db, core)
        portals = {name: Portal(name.split("-")[1]) for name in VARIANTS if "-" in name}
        try:
            results = run_rounds(args, raw, core_db, core, portals, settings)
        finally:
            for portal in portals.values():
                portal.close()
            raw.close()
            core_db.close()
    report(results, args, time.perf_counter() - started)
    return 0


def run_rounds(
    args: argparse.Namespace,
    raw: Raw,
    core_db: Any,
    core: Any,
    portals: dict[str, Portal],
    settings: Any,
) -> Results:
    facades = {name: portal.call(open_facade, settings) for name, portal in portals.items()}
    results = Results()
    counters = {
        "core": core_db.transport.stats,
        **{name: db.core.transport.stats for name, (db, _) in facades.items()},
    }
    requests_before = {name: stats.total_requests for name, stats in counters.items()}

    def run(variant: str, operation: str, docs: list[dict[str, Any]]) -> Sample:
        if variant == "raw":
            return measure(raw_batch(raw, operation, docs))
        if variant == "core":
            return measure(core_batch(core, operation, docs))
        sample: Sample = portals[variant].call(facade_batch, facades[variant][1], operation, docs)
        return sample

    # Each operation's batches run back to back for every variant (in an order rotating
    # round by round), so the ratios compare batches measured moments apart.
    for number in range(args.warmup + args.rounds):
        docs = {v: [document(f"{v}-{number}-{i}", 10_000 + i) for i in range(args.batch)]
                for v in VARIANTS}  # fmt: skip
        shift = number % len(VARIANTS)
        order = [*VARIANTS[shift:], *VARIANTS[:shift]]
        for operation in RUN_ORDER:
            for variant in order:
                sample = run(variant, operation, docs[variant])
                if number >= args.warmup:
                    results.add(operation, variant, sample)
    for name, (database, _) in facades.items():
        portals[name].call(database.__aexit__, None, None, None)
    expected = (args.warmup + args.rounds) * args.batch * len(OPERATIONS)
    for name, stats in counters.items():
        sent = stats.total_requests - requests_before[name]
        if sent != expected:
            raise SystemExit(f"{name} sent {sent} requests for {expected} operations")
    return results


def report(results: Results, args: argparse.Namespace, seconds: float) -> None:
    print(
        f"\n{args.rounds} rounds x {args.batch} operations per variant and operation "
        f"({args.warmup} warm-up rounds dropped), {seconds:.0f} s; one request per operation, "
        "raw request identical to the core's (checked)."
    )
    print(
        "How to read: wall = median ms per operation, cpu = median client-process CPU µs per "
        "operation;\nf/raw = facade ÷ raw (asyncio, trio), core/raw = core ÷ raw, each the "
        "median of the rounds' own ratios.\nGoal: f/raw ≤ 1.10 wall and ≤ 1.35 CPU on "
        "find_one, delete_one and insert_one.\n"
    )
    for what, scale, unit in (("wall", 1e3, "wall ms"), ("cpu", 1e6, "client CPU µs")):
        rows = []
        for operation in OPERATIONS:
            values = {v: results.median(operation, v, what) for v in VARIANTS}
            cells = [LABELS[operation]]
            cells += [f"{values[v] * scale:,.{2 if what == 'wall' else 0}f}" for v in VARIANTS]
            cells += [
                f"{results.median_ratio(operation, v, 'raw', what):.2f}"
                for v in ("facade-asyncio", "facade-trio", "core")
            ]
            goal = GOALS.get(operation)
            cells.append(f"≤ {goal[0 if what == 'wall' else 1]:.2f}" if goal else "")
            rows.append(cells)
        header = [unit, *VARIANTS, "f/raw asyncio", "f/raw trio", "core/raw", "goal f/raw"]
        print_table(f"{unit} per operation (median of {args.rounds} rounds)", header, rows)


if __name__ == "__main__":
    sys.exit(main())
