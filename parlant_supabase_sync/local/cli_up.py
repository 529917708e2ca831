"""`parlant-supabase-sync local up`: run the local stand-in until SIGINT/SIGTERM.

Once ready it prints, on stdout and nothing else there:

    SUPABASE_URL=…
    SUPABASE_KEY=…               (legacy service_role JWT)
    SUPABASE_ANON_KEY=…
    SUPABASE_SECRET_KEY=sb_secret_…
    SUPABASE_PUBLISHABLE_KEY=sb_publishable_…
    DATABASE_URL=…               (superuser, with the cluster's random password)
    ready

Printing the keys is this command's purpose; they appear nowhere else (stderr shows no key).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

__all__ = ["run_local_up"]

_ENV_ORDER = (
    "SUPABASE_URL",
    "SUPABASE_KEY",
    "SUPABASE_ANON_KEY",
    "SUPABASE_SECRET_KEY",
    "SUPABASE_PUBLISHABLE_KEY",
    "DATABASE_URL",
)


class _Shutdown(BaseException):
    """Raised by the signal handler: unwinds startup or the wait, like KeyboardInterrupt."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parlant-supabase-sync local up",
        description="Run a local Supabase stand-in (PostgreSQL + PostgREST-protocol API) until "
        "interrupted; prints the environment variables for clients, then `ready`.",
    )
    parser.add_argument("--port", type=int, default=0,
                        help="API port on 127.0.0.1 (default: a free port)")
    parser.add_argument("--data-dir", default=None,
                        help="keep the database (and keys) in this directory and reuse it on the "
                        "next run (default: a temporary directory deleted on exit)")
    parser.add_argument("--max-rows", type=int, default=1000,
                        help="server-side cap on rows per response, like PostgREST's "
                        "db-max-rows (default: 1000, Supabase's default)")
    parser.add_argument("--locale", default="C.UTF-8",
                        help="cluster locale for a new data dir: C.UTF-8 as hosted Supabase "
                        "(default), an installed libc locale, or icu:<tag> (e.g. icu:en-US)")
    parser.add_argument("--max-request-line", type=int, default=8192,
                        help="longest request line in bytes before 414, as Kong/nginx "
                        "(default: 8192; 0: no limit)")
    parser.add_argument("--schemas", default="public",
                        help="comma-separated exposed schemas, the first is the default "
                        "(default: public)")
    parser.add_argument("--no-ddl-watch", action="store_true",
                        help="do not install Supabase's schema-reload event triggers (plain "
                        "PostgREST: only NOTIFY pgrst, 'reload schema' reloads)")
    return parser


def run_local_up(argv: Sequence[str]) -> int:
    """Entry point of `parlant-supabase-sync local up`; returns the exit code."""
    args = _parser().parse_args(list(argv))
    if args.port < 0 or args.port > 65535:
        print("local up: --port must be between 0 and 65535", file=sys.stderr)
        return 2
    if args.max_rows < 1:
        print("local up: --max-rows must be at least 1", file=sys.stderr)
        return 2
    if args.max_request_line != 0 and args.max_request_line < 16:
        print("local up: --max-request-line must be 0 (no limit) or at least 16", file=sys.stderr)
        return 2
    if not [s for s in args.schemas.split(",") if s.strip()]:
        print("local up: --schemas must name at least one schema", file=sys.stderr)
        return 2

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only the first signal unwinds; a second Ctrl-C must not abort the cleanup.
        if not stopping.is_set():
            stopping.set()
            raise _Shutdown(signum)

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in handled:
            previous[signum] = signal.signal(signum, on_signal)
    try:
        return _serve(args, stopping)
    except _Shutdown:
        return 0
    finally:
        for restored, handler in previous.items():
            signal.signal(restored, handler)


def _serve(args: argparse.Namespace, stopping: threading.Event) -> int:
    try:
        from .gateway import GatewayError
        from .postgres import PostgresError
        from .stack import LocalSupabase, LocalSupabaseError
    except ImportError as exc:
        print(f"local up: needs the `local` extra ({exc}); run: "
              "pip install 'parlant-supabase-sync[local]'", file=sys.stderr)
        return 1

    stack = LocalSupabase(
        port=args.port,
        data_dir=args.data_dir,
        max_rows=args.max_rows,
        locale=args.locale,
        max_request_line=args.max_request_line or None,
        schemas=tuple(s.strip() for s in args.schemas.split(",") if s.strip()),
        ddl_watch=not args.no_ddl_watch,
    )
    try:
        try:
            stack.start()
        except (PostgresError, LocalSupabaseError, GatewayError, OSError) as exc:
            print(f"local up: could not start: {exc}", file=sys.stderr)
            return 1
        env = stack.env()
        try:
            sys.stdout.write("".join(f"{name}={env[name]}\n" for name in _ENV_ORDER) + "ready\n")
            sys.stdout.flush()
        except OSError as exc:
            print(f"local up: cannot write to stdout ({exc}); stopping", file=sys.stderr)
            return 1
        print(f"local up: API at {stack.url}/rest/v1, PostgreSQL at 127.0.0.1:"
              f"{stack.postgres.port} (data dir {stack.postgres.data_dir}); "
              "stop with Ctrl-C or SIGTERM", file=sys.stderr, flush=True)
        while not stopping.is_set():
            stopping.wait(3600)
        return 0
    finally:
        stopping.set()
        stack.stop()


if __name__ == "__main__":
    sys.exit(run_local_up(sys.argv[1:]))
