"""Memory of `parlant-supabase-sync export` as the collection grows (prints figures; not a test).

Starts the local stand-in, fills one events collection per size with generated documents, then
exports each in a fresh child process that reports its own peak RSS and tracemalloc peak. Flat
numbers across sizes show the export streams page by page instead of holding the collection.

    python benchmarks/export_memory.py                  # sizes 2000 8000 32000
    python benchmarks/export_memory.py --sizes 1000 4000 --page-size 500
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

SESSIONS = ("sessions", "events", "metadata")


def _child(prefix: str, output: str, page_size: int | None) -> int:
    # Runs in a fresh interpreter so peak RSS belongs to this export alone.
    tracemalloc.start()
    from parlant_supabase_sync import cli

    argv = ["export", prefix, "events", "-o", output]
    if page_size:
        argv += ["--page-size", str(page_size)]
    started = time.perf_counter()
    code = cli.main(argv)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps({"code": code, "tracemalloc_peak": peak, "rss_kib": rss_kib, "seconds": elapsed})
    )
    return 0


def _fill(stack: object, prefix: str, size: int) -> None:
    from parlant_supabase_sync import ddl
    from parlant_supabase_sync.naming import table_name

    execute = stack.execute_sql  # type: ignore[attr-defined]
    execute(ddl.generate_schema({prefix: SESSIONS}))
    table = table_name(prefix, "events")
    execute(
        f"""
        INSERT INTO public."{table}" (id, version, creation_utc, session_id, data)
        SELECT d->>'id', d->>'version', d->>'creation_utc', d->>'session_id', d
          FROM (
            SELECT jsonb_build_object(
                     'id', 'ev-' || lpad(i::text, 7, '0'),
                     'version', '0.9.0',
                     'creation_utc', '2025-01-01T00:00:00.' || lpad(i::text, 7, '0') || '+00:00',
                     'session_id', 's' || (i % 50),
                     'source', 'customer', 'kind', 'message', 'offset', i, 'deleted', false,
                     'trace_id', md5(i::text),
                     'data', jsonb_build_object('message', repeat('lorem ipsum ', 20)),
                     'metadata', jsonb_build_object('n', i, 'tags', jsonb_build_array('a', 'b'))
                   ) AS d
              FROM generate_series(1, {size}) AS i
          ) AS generated
        """
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 32000])
    parser.add_argument("--page-size", type=int, default=None, help="documents per request")
    parser.add_argument("--max-rows", type=int, default=1000, help="the stand-in's max-rows cap")
    parser.add_argument("--child", nargs=2, metavar=("PREFIX", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child[0], args.child[1], args.page_size)

    from parlant_supabase_sync import ddl
    from parlant_supabase_sync.local import LocalSupabase

    with LocalSupabase(max_rows=args.max_rows) as stack, tempfile.TemporaryDirectory() as tmp:
        stack.execute_sql(ddl.generate_functions())
        env = {**os.environ, **stack.env()}
        print(
            f"{'documents':>10} {'file MiB':>9} {'peak RSS MiB':>13} {'tracemalloc peak MiB':>21} {'seconds':>8}"
        )
        for size in args.sizes:
            prefix = f"bench{size}_sessions_"
            _fill(stack, prefix, size)
            output = os.path.join(tmp, f"{size}.jsonl")
            command = [sys.executable, __file__, "--child", prefix, output]
            if args.page_size:
                command += ["--page-size", str(args.page_size)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.stderr.write(done.stderr)
                return 1
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            if figures["code"] != 0:
                sys.stderr.write(done.stderr)
                return 1
            with open(output, encoding="utf-8") as exported:
                lines = sum(1 for _ in exported)
            assert lines == size, (lines, size)
            print(
                f"{size:>10} {os.path.getsize(output) / 2**20:>9.1f} "
                f"{figures['rss_kib'] / 1024:>13.1f} {figures['tracemalloc_peak'] / 2**20:>21.2f} "
                f"{figures['seconds']:>8.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
