"""Helpers shared by tests/facade and tests/parlant (imported by basename: no test packages)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from parlant.core.loggers import Logger, LogLevel

if TYPE_CHECKING:
    from parlant_supabase_sync.local import LocalSupabase

# The tox envs `*-asyncio`/`*-trio` narrow this; by default every facade test runs on both.
BACKENDS = [b for b in os.environ.get("ANYIO_BACKENDS", "asyncio,trio").split(",") if b]

# Adapter tables used by the facade tests (a prefix of our own; `docs` is a generic collection).
FACADE_PREFIX = "pss_facade_"
FACADE_COLLECTIONS = ("docs", "metadata")


class RecordingLogger(Logger):
    """A small real Parlant logger that keeps its messages."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def set_level(self, log_level: LogLevel) -> None:
        pass

    def trace(self, message: str) -> None:
        self.messages.append(("trace", message))

    def debug(self, message: str) -> None:
        self.messages.append(("debug", message))

    def info(self, message: str) -> None:
        self.messages.append(("info", message))

    def warning(self, message: str) -> None:
        self.messages.append(("warning", message))

    def error(self, message: str) -> None:
        self.messages.append(("error", message))

    def critical(self, message: str) -> None:
        self.messages.append(("critical", message))

    @contextmanager
    def scope(self, scope_id: str) -> Iterator[None]:
        yield


def apply_schema(stack: LocalSupabase) -> None:
    """The generated SQL for the default stores and the facade test prefix."""
    from parlant_supabase_sync import ddl

    stores = {**ddl.default_stores(), FACADE_PREFIX: FACADE_COLLECTIONS}
    stack.execute_sql(ddl.generate_schema(stores, include_functions=True))


def truncate_adapter_tables(stack: LocalSupabase) -> None:
    stack.execute_sql(
        """
        DO $$
        DECLARE t record;
        BEGIN
          FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND c.relkind = 'r'
                     AND (c.relname LIKE 'parlant\\_%' OR c.relname LIKE 'pss\\_%')
          LOOP
            EXECUTE format('TRUNCATE TABLE public.%I', t.relname);
          END LOOP;
        END $$;
        """
    )


@contextmanager
def no_new_busy_threads() -> Iterator[None]:
    """Assert that every thread started inside the block is idle (or gone) at its end.

    The only new threads allowed to remain are the backends' idle worker threads (anyio's
    asyncio workers and trio's thread cache keep them for reuse and let them expire after 10 s)
    and the stand-in server's own threads.
    """
    before = {t.ident for t in threading.enumerate()}
    yield
    busy = []
    new_workers = []
    frames = sys._current_frames()
    for thread in threading.enumerate():
        if thread.ident in before or thread.ident is None:
            continue
        frame = frames.get(thread.ident)
        stack = []
        while frame is not None:
            stack.append(frame.f_code.co_filename)
            frame = frame.f_back
        # The stand-in's server threads live in this process too; they are not the adapter's.
        if any("parlant_supabase_sync/local/" in f or "/psycopg" in f for f in stack):
            continue
        new_workers.append(thread.name)
        if any(
            "parlant_supabase_sync" in f or "/httpx/" in f or "/httpcore/" in f
            for f in stack
        ):
            busy.append(thread.name)
    assert busy == [], f"worker threads still running adapter or HTTP code: {busy}"
    strangers = [
        name
        for name in new_workers
        if not name.startswith(("AnyIO worker thread", "Trio thread"))
    ]
    assert strangers == [], (
        f"threads left behind that are not idle workers: {strangers}"
    )
