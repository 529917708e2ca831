"""Throughput under concurrency: find_one by id, raw threads vs the facade on asyncio and trio.

    .venv/bin/python benchmarks/concurrency.py                 # 5 rounds of 1,500 calls each
    .venv/bin/python benchmarks/concurrency.py --rounds 8 --operations 3000

Starts the local stand-in in a child process, fills one collection with 1,000 documents, then
runs interleaved rounds. In each round every variant performs ``--operations`` find_one calls
by id (random documents, the same sequence for every variant):

* ``raw``: ``--limit`` threads (32) sharing one bare ``httpx.Client`` (configured like the
  adapter's, pool of 32), each sending the identical request the adapter sends;
* ``core``: the same threads calling ``SyncDocumentCollection.find_one`` (no event loop);
* ``facade-asyncio`` / ``facade-trio``: ``--tasks`` tasks (64) on one event loop sharing one
  ``SupabaseDocumentDatabase`` whose limiter (and HTTP pool) is ``--limit`` (32).

Figures are medians over rounds: calls per second (wall) and client CPU per call
(``time.process_time`` of this process: the stand-in runs in another one). The ratio divides
the facade's calls/s by raw's (goal ≥ 0.90). On a 2-core machine the stand-in and the client
share the CPUs, so client CPU per call is what moves the ratio.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import threading
import time
from typing import Any

from _bench import Portal, StandIn, interleave, machine_line, print_table, quiet_logging, ratio
from overhead import COLLECTION, FILL, PREFIX, TABLE, Doc, Raw, document

VARIANTS = ("raw", "core", "facade-asyncio", "facade-trio")


def run_threads(find_one: Any, ids: list[str], threads: int) -> tuple[float, float]:
    """``len(ids)`` calls of ``find_one(id)`` from ``threads`` threads; (wall s, client CPU s)."""
    position = iter(range(len(ids)))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            find_one(ids[index])

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return time.perf_counter() - wall0, time.process_time() - cpu0


async def run_facade(collection: Any, ids: list[str], tasks: int) -> tuple[float, float]:
    """``len(ids)`` find_one calls from ``tasks`` tasks; (wall s, client CPU s)."""
    import anyio

    position = iter(range(len(ids)))

    async def worker() -> None:
        for index in position:  # tasks share the iterator: each call is taken once
            await collection.find_one({"id": {"$eq": ids[index]}})

    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(tasks):
            group.start_soon(worker)
    return time.perf_counter() - wall0, time.process_time() - cpu0


async def open_facade(settings: Any) -> tuple[Any, Any]:
    from parlant_supabase_sync.facade import SupabaseDocumentDatabase

    async def keep(doc: Any) -> Any:
        return doc

    database = SupabaseDocumentDatabase(
        logging.getLogger("bench"), table_prefix=PREFIX, settings=settings
    )
    return database, await database.get_or_create_collection(COLLECTION, Doc, keep)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--operations", type=int, default=1500, help="calls per round")
    parser.add_argument("--tasks", type=int, default=64, help="facade tasks (default 64)")
    parser.add_argument("--limit", type=int, default=32, help="limiter, pool, raw threads")
    parser.add_argument("--warmup", type=int, default=1, help="rounds run first and dropped")
    args = parser.parse_args(argv)
    if min(args.rounds, args.operations, args.tasks, args.limit) < 1 or args.warmup < 0:
        parser.error("--rounds, --operations, --tasks and --limit must be >= 1")

    from parlant_supabase_sync.core import SyncDocumentDatabase
    from parlant_supabase_sync.ddl import generate_functions, generate_schema

    print(__doc__.split("\n\n")[0])
    print(machine_line())
    started = time.perf_counter()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    with quiet_logging(), StandIn() as stand_in:
        stand_in.execute_sql(
            generate_functions() + generate_schema({PREFIX: (COLLECTION,)}), visible=[TABLE]
        )
        settings = stand_in.settings(max_workers=args.limit)
        with SyncDocumentDatabase(settings, table_prefix=PREFIX) as filler:
            collection = filler.get_or_create_collection(COLLECTION, Doc, lambda doc: doc)
            collection.put_many([document(f"fill-{i:05d}", i) for i in range(FILL)])
        raw = Raw(settings)
        core_db = SyncDocumentDatabase(settings, table_prefix=PREFIX)
        core = core_db.get_or_create_collection(COLLECTION, Doc, lambda doc: doc)

        def core_find_one(doc_id: str) -> Any:
            return core.find_one({"id": {"$eq": doc_id}})

        portals = {name: Portal(name.split("-")[1]) for name in VARIANTS if "-" in name}
        try:
            facades = {name: portal.call(open_facade, settings) for name, portal in portals.items()}
            rng = random.Random(1)

            def run_round(variant: str, number: int) -> None:
                ids = [f"fill-{rng.randrange(FILL):05d}" for _ in range(args.operations)]
                if variant == "raw":
                    sample = run_threads(raw.find_one, ids, args.limit)
                elif variant == "core":
                    sample = run_threads(core_find_one, ids, args.limit)
                else:
                    collection = facades[variant][1]
                    sample = portals[variant].call(run_facade, collection, ids, args.tasks)
                if number >= args.warmup:
                    samples[variant].append(sample)

            interleave(VARIANTS, args.warmup + args.rounds, run_round)
            for name, (database, _) in facades.items():
                portals[name].call(database.__aexit__, None, None, None)
        finally:
            for portal in portals.values():
                portal.close()
            raw.close()
            core_db.close()
    report(samples, args, time.perf_counter() - started)
    return 0


def report(
    samples: dict[str, list[tuple[float, float]]], args: argparse.Namespace, seconds: float
) -> None:
    print(
        f"\n{args.rounds} rounds x {args.operations} find_one calls per variant "
        f"({args.warmup} warm-up round dropped), {seconds:.0f} s; raw: {args.limit} threads; "
        f"facade: {args.tasks} tasks, limiter {args.limit}."
    )
    print(
        "How to read: calls/s = median throughput; CPU = median client-process CPU µs per call;"
        "\nratio = calls/s ÷ raw calls/s (goal for the facade ≥ 0.90).\n"
    )
    rate = {v: statistics.median(args.operations / w for w, _ in samples[v]) for v in VARIANTS}
    cpu = {v: statistics.median(c / args.operations for _, c in samples[v]) for v in VARIANTS}
    rows = [
        [
            name,
            f"{rate[name]:,.0f}",
            f"{cpu[name] * 1e6:,.0f}",
            "" if name == "raw" else ratio(rate[name], rate["raw"]),
        ]
        for name in VARIANTS
    ]
    print_table(
        f"find_one by id under concurrency (median of {args.rounds} rounds)",
        ["variant", "calls/s", "client CPU µs/call", "ratio vs raw"],
        rows,
    )


if __name__ == "__main__":
    sys.exit(main())
