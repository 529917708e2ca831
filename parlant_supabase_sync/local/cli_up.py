"""`parlant-supabase-sync local up`: run the local stand-in until Ctrl-C or SIGTERM.

The command and its options are defined in `parlant_supabase_sync.cli`; this module does the
work. Once the stand-in is ready (and, unless `--no-schema`, the adapter's tables and functions
exist) it prints, on stdout and nothing else there, lines a POSIX shell can load
(`set -a; . FILE; set +a`), values quoted where needed:

    SUPABASE_URL=http://127.0.0.1:…
    SUPABASE_KEY=sb_secret_…             (the secret key: `check` accepts it without a note)
    SUPABASE_SECRET_KEY=sb_secret_…
    SUPABASE_PUBLISHABLE_KEY=sb_publishable_…
    SUPABASE_SERVICE_ROLE_KEY=…          (legacy service_role JWT)
    SUPABASE_ANON_KEY=…                  (legacy anon JWT)
    SUPABASE_SCHEMA=public               (the first of --schemas)
    DATABASE_URL=postgresql://…          (superuser, with the cluster's random password)
    ready

`--env-file FILE` writes the same lines (without `ready`) to FILE, mode 0600, before `ready`.
Printing the keys is this command's purpose; they appear nowhere else (stderr shows no key).
Exit codes: 0 after SIGTERM/SIGHUP, 130 after Ctrl-C (SIGINT), 1 when the stand-in cannot start.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from .stack import LocalSupabase

__all__ = ["env_lines", "run_local_up"]

_EXIT_INTERRUPTED = 130


class _Shutdown(BaseException):
    """Raised by the signal handler: unwinds startup or the wait, like KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def client_env(stack: LocalSupabase) -> dict[str, str]:
    """What `local up` prints, in order (SUPABASE_KEY is the secret key)."""
    env = stack.env()
    return {
        "SUPABASE_URL": env["SUPABASE_URL"],
        "SUPABASE_KEY": env["SUPABASE_SECRET_KEY"],
        "SUPABASE_SECRET_KEY": env["SUPABASE_SECRET_KEY"],
        "SUPABASE_PUBLISHABLE_KEY": env["SUPABASE_PUBLISHABLE_KEY"],
        "SUPABASE_SERVICE_ROLE_KEY": env["SUPABASE_KEY"],
        "SUPABASE_ANON_KEY": env["SUPABASE_ANON_KEY"],
        "SUPABASE_SCHEMA": stack.schemas[0],
        "DATABASE_URL": env["DATABASE_URL"],
    }


def env_lines(env: Mapping[str, str]) -> str:
    """`NAME=value` lines a POSIX shell can source (values quoted with shlex when needed)."""
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in env.items())


def _write_env_file(path: str, text: str) -> None:
    # Beside the target, then renamed: a reader never sees half a file.
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, partial = tempfile.mkstemp(prefix=".env-", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise


def run_local_up(
    *,
    port: int | None = None,
    data_dir: str | None = None,
    env_file: str | None = None,
    no_schema: bool = False,
    max_rows: int | None = None,
    locale: str | None = None,
    max_request_line: int | None = None,
    schemas: Sequence[str] | None = None,
    no_ddl_watch: bool = False,
    pgvector: bool = False,
) -> int:
    """Start the stand-in, print the environment, wait for a signal; returns the exit code.

    None means the stand-in's default. Failures to start raise `click.ClickException`.
    """
    options: dict[str, Any] = {"port": port, "data_dir": data_dir, "max_rows": max_rows,
                               "locale": locale, "schemas": schemas}  # fmt: skip
    if max_request_line is not None:
        options["max_request_line"] = max_request_line or None  # 0: no limit
    options = {name: value for name, value in options.items() if value is not None}
    options["ddl_watch"] = not no_ddl_watch
    options["pgvector"] = pgvector
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only the first signal unwinds; a second Ctrl-C must not abort the cleanup.
        if not stopping.is_set():
            stopping.set()
            raise _Shutdown(signum)

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        _serve(options, apply_schema=not no_schema, env_file=env_file, stopping=stopping)
        return 0
    except _Shutdown as exc:
        return _EXIT_INTERRUPTED if exc.signum == signal.SIGINT else 0
    finally:
        for restored, handler in previous.items():
            signal.signal(restored, handler)


def _start(options: Mapping[str, Any], *, apply_schema: bool) -> LocalSupabase:
    try:
        from .gateway import GatewayError
        from .postgres import PostgresError
        from .stack import LocalSupabase, LocalSupabaseError
    except ImportError as exc:
        raise click.ClickException(
            f"local up needs the `local` extra ({exc}): pip install 'parlant-supabase-sync[local]'"
        ) from None
    stack = LocalSupabase(**options)
    try:
        stack.start()
        if apply_schema:
            _say("creating the adapter's tables and functions (skip with --no-schema)…")
            stack.apply_schema()
    except (PostgresError, LocalSupabaseError, GatewayError, OSError) as exc:
        stack.stop()
        raise click.ClickException(f"local up could not start: {exc}") from None
    except BaseException:
        stack.stop()
        raise
    return stack


def _serve(
    options: Mapping[str, Any], *, apply_schema: bool, env_file: str | None,
    stopping: threading.Event,
) -> None:  # fmt: skip
    stack = _start(options, apply_schema=apply_schema)
    try:
        for note in stack.port_notes:
            _say(f"note: {note}")
        text = env_lines(client_env(stack))
        if env_file is not None:
            try:
                _write_env_file(env_file, text)
            except OSError as exc:
                raise click.ClickException(
                    f"cannot write --env-file {env_file}: {exc.strerror}"
                ) from None
        try:
            sys.stdout.write(text + "ready\n")
            sys.stdout.flush()
        except OSError as exc:
            raise click.ClickException(f"cannot write to stdout ({exc}); stopping") from None
        loaded = f"; load it with: set -a; . {shlex.quote(env_file)}; set +a" if env_file else ""
        _say(
            f"API at {stack.url}/rest/v1, PostgreSQL at 127.0.0.1:{stack.postgres.port} "
            f"(data dir {stack.postgres.data_dir}){loaded}; stop with Ctrl-C or SIGTERM"
        )
        while not stopping.is_set():
            stopping.wait(3600)
    finally:
        stopping.set()
        stack.stop()


def _say(message: str) -> None:
    print(f"local up: {message}", file=sys.stderr, flush=True)
