"""Chaos run: mixed operations through the async facade behind FaultProxy, checked in PostgreSQL.

Starts the local stand-in (PostgreSQL + gateway) and a FaultProxy in front of it, creates a
fresh collection table, runs the seeded workload of tests/faults/chaos_workload.py (insert_one,
find_one by id, paged find with cursors, counts, update_one by id and by another field,
upserts, delete_one by id) with random faults of every kind, then prints the figures. Exits 1
if any lost write, duplicate, wrong result, untyped error or hang was found.

    python benchmarks/chaos.py --operations 2000 --seed 1 --fault-rate 0.1
    python benchmarks/chaos.py --kinds reset_after,framed_cut --fault-rate 0.2 --backend trio
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "faults"))  # the shared workload (not a package)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    from parlant_supabase_sync.local.faultproxy import FAULT_KINDS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operations", type=int, default=2000, help="operations in total (default 2000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the workload and the proxy")
    parser.add_argument("--fault-rate", type=float, default=0.1, help="probability of a fault per request")
    parser.add_argument("--kinds", default=",".join(FAULT_KINDS), help="comma-separated fault kinds (default: all)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent workers (default 4)")
    parser.add_argument("--read-timeout", type=float, default=1.0, help="client read timeout, s (default 1)")
    parser.add_argument("--hold-seconds", type=float, default=1.5, help="how long `hold` keeps an answer")
    parser.add_argument("--attempts", type=int, default=4, help="the adapter's retry attempts (default 4)")
    parser.add_argument("--max-faults", type=int, default=100_000, help="bound on injected faults")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        parser.error(f"unknown fault kind(s) {unknown}; choose from {', '.join(FAULT_KINDS)}")
    if args.operations < 1 or args.workers < 1 or not 0 <= args.fault_rate <= 1:
        parser.error("--operations and --workers must be >= 1, --fault-rate between 0 and 1")
    args.kinds = kinds
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)

    import anyio
    from chaos_workload import chaos_logger, chaos_settings, run_chaos

    from parlant_supabase_sync.ddl import generate_functions, generate_schema
    from parlant_supabase_sync.local import LocalSupabase
    from parlant_supabase_sync.local.faultproxy import FaultProxy
    from parlant_supabase_sync.naming import table_name

    prefix = f"chaos{args.seed}_"
    # Generous: a run never takes more than ~1 s per operation and worker.
    deadline = 120.0 + args.operations * max(args.read_timeout, 0.1) * 2
    weights = {kind: 1.0 for kind in args.kinds}
    with LocalSupabase() as stand_in:
        stand_in.execute_sql(generate_functions())
        stand_in.execute_sql(generate_schema({prefix: ("docs",)}))
        with FaultProxy(
            stand_in.url,
            seed=args.seed,
            hold_seconds=args.hold_seconds,
            max_faults=args.max_faults,
            deadline=deadline,
            max_connections=max(64, args.workers * 8),
        ) as proxy:
            logger, retries = chaos_logger("benchmarks.chaos")
            started = time.perf_counter()
            figures = anyio.run(
                partial(
                    run_chaos,
                    settings=chaos_settings(
                        proxy.url,
                        stand_in.secret_key,
                        read_timeout=args.read_timeout,
                        attempts=args.attempts,
                    ),
                    database_url=stand_in.database_url,
                    prefix=prefix,
                    table=table_name(prefix, "docs"),
                    operations=args.operations,
                    workers=args.workers,
                    seed=args.seed,
                    logger=logger,
                    on_ready=lambda: proxy.set_rate(args.fault_rate, weights),
                    on_done=lambda: proxy.set_rate(0.0),
                ),
                backend=args.backend,
            )
            wall = time.perf_counter() - started
            faults = proxy.counters
            requests = proxy.requests
    result = {
        "operations": figures.operations,
        "requests": requests,
        "faults": sum(faults.values()),
        "faults_per_kind": faults,
        "retries": retries.retries,
        "typed_errors_after_retries": figures.typed_errors,
        "typed_errors_by_class": dict(figures.typed_by_class),
        "lost_writes": figures.lost_writes,
        "duplicates": figures.duplicates,
        "wrong_results": figures.wrong_results,
        "untyped_errors": figures.untyped_errors,
        "hangs": figures.hangs,
        "failing": dict(sorted(figures.failing.items())),
        "slowest_operation_s": round(figures.slowest, 3),
        "wall_time_s": round(wall, 2),
        "seed": args.seed,
        "fault_rate": args.fault_rate,
        "backend": args.backend,
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"chaos run: seed {args.seed}, fault rate {args.fault_rate}, {args.workers} workers, {args.backend}")
        print(f"  operations                   {figures.operations}")
        print(f"  requests through the proxy   {requests}")
        print(f"  faults                       {sum(faults.values())}")
        for kind, count in faults.items():
            print(f"    {kind:<26} {count}")
        print(f"  retries                      {retries.retries}")
        print(f"  typed errors after retries   {figures.typed_errors} {dict(figures.typed_by_class) or ''}")
        print(f"  lost writes                  {figures.lost_writes}")
        print(f"  duplicates                   {figures.duplicates}")
        print(f"  wrong results                {figures.wrong_results}")
        print(f"  untyped errors               {figures.untyped_errors}")
        print(f"  hangs                        {figures.hangs}")
        print(f"  slowest operation            {figures.slowest:.2f} s")
        print(f"  wall time                    {wall:.1f} s")
        if figures.failing:
            print(f"  failing                      {dict(sorted(figures.failing.items()))}")
    if figures.problems:
        print("first problems:", file=sys.stderr)
        for line in figures.problems[:20]:
            print(f"  {line[:400]}", file=sys.stderr)
    return 0 if figures.clean else 1


if __name__ == "__main__":
    sys.exit(main())
