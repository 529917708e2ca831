"""The schema cache's life cycle, as PostgREST's `AppState/Reload.hs` runs it.

`SchemaCache.start()` loads the cache once (the gateway starts serving after that) and starts
the listener: one connection doing `LISTEN pgrst`. A notification with the payload
`reload schema` or an empty payload reloads the cache; `reload config` and anything else are
ignored (the stand-in has no in-database config). Reloads happen on the listener's thread,
asynchronously: a request that arrives before the reload finished is answered from the old
cache, so a table created a moment ago answers PGRST205 until then. When the listener
connection is lost it reconnects with backoff and reloads (notifications may have been lost),
like PostgREST.

Tests need to know when a reload has happened: `reload_count` counts completed loads, and
`sync()` is a barrier. It sends a marker notification on a private channel; notifications are
delivered in commit order, so once the listener has seen the marker it has seen every reload
request committed before `sync()` was called, and `sync()` returns after the loads those
requests caused.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import select
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from .schema_cache import Snapshot, load_snapshot

__all__ = ["CHANNEL", "SchemaCache", "SchemaCacheError"]

logger = logging.getLogger(__name__)

#: PostgREST's default `db-channel`.
CHANNEL = "pgrst"
# Private channel for `sync()` markers; nothing but the stand-in listens on it.
_MARKER_CHANNEL = "parlant_supabase_sync_schema_cache"
_RELOAD_PAYLOADS = ("", "reload schema")
_POLL = 0.2
_MAX_BACKOFF = 32.0


class SchemaCacheError(RuntimeError):
    """The schema cache could not be loaded, or a wait for a reload timed out."""


class SchemaCache:
    """A `Snapshot` kept current by `NOTIFY pgrst` (PostgREST's schema cache + listener)."""

    def __init__(self, dsn: str, schemas: Sequence[str], *, listen: bool = True) -> None:
        self._dsn = dsn
        self._schemas = tuple(schemas)
        self._listen = listen
        self._cond = threading.Condition()
        self._snapshot: Snapshot | None = None
        self._loads = 0
        self._done_markers: set[str] = set()
        # Markers sent and not yet seen; a reload after a reconnect settles them all, since
        # the listener may have missed them while it was away.
        self._pending_markers: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loader: psycopg.Connection[Any] | None = None
        self._loader_lock = threading.Lock()

    # ---- what the engine and tests use

    def current(self) -> Snapshot:
        """The cache requests are answered from right now."""
        snapshot = self._snapshot
        if snapshot is None:
            raise SchemaCacheError("the schema cache is not loaded; start() it first")
        return snapshot

    @property
    def reload_count(self) -> int:
        """How many loads have completed (1 after start())."""
        with self._cond:
            return self._loads

    @property
    def listening(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_reload(self, after: int, timeout: float = 10.0) -> int:
        """Wait until `reload_count` exceeds `after`; returns it (SchemaCacheError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._loads <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SchemaCacheError(f"no schema cache reload within {timeout:.0f} s")
                self._cond.wait(left)
            return self._loads

    def sync(self, timeout: float = 10.0) -> None:
        """Return once every reload request committed before this call has been loaded."""
        if not self.listening:
            raise SchemaCacheError("the schema cache listener is not running")
        token = secrets.token_hex(8)
        with self._cond:
            self._pending_markers.add(token)
        with self._loader_lock:
            self._loader_conn().execute("SELECT pg_notify(%s, %s)", (_MARKER_CHANNEL, token))
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._done_markers:
                left = deadline - time.monotonic()
                if left <= 0 or not self.listening:
                    self._pending_markers.discard(token)
                    raise SchemaCacheError(f"the schema cache did not catch up within {timeout:.0f} s")
                self._cond.wait(min(left, 1.0))
            self._done_markers.discard(token)
            self._pending_markers.discard(token)

    def reload(self) -> None:
        """Reload now, on the caller's thread (what PostgREST does on SIGUSR1)."""
        self._load()

    # ---- life cycle

    def start(self) -> None:
        """Load the cache (errors propagate) and start listening."""
        self._stop.clear()
        self._load()
        if self._listen:
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(ready,), name="schema-cache-listener", daemon=True
            )
            self._thread.start()
            if not ready.wait(10.0):
                self.stop()
                raise SchemaCacheError("the schema cache listener did not connect within 10 s")

    def stop(self) -> None:
        """Stop listening and close the connections. Idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5.0)
        with self._loader_lock:
            loader, self._loader = self._loader, None
        if loader is not None:
            with contextlib.suppress(Exception):
                loader.close()
        with self._cond:
            self._cond.notify_all()

    # ---- internals

    def _loader_conn(self) -> psycopg.Connection[Any]:
        conn = self._loader
        if conn is None or conn.closed or conn.broken:
            conn = self._loader = psycopg.connect(
                self._dsn, autocommit=True, application_name="parlant-supabase-schema-cache"
            )
        return conn

    def _load(self) -> None:
        with self._loader_lock:
            try:
                conn = self._loader_conn()
                # PostgREST queries its cache in one READ COMMITTED, READ ONLY transaction.
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY")
                    snapshot = load_snapshot(conn, self._schemas)
            except psycopg.Error as exc:
                raise SchemaCacheError(f"could not load the schema cache: {exc}") from exc
        with self._cond:
            self._snapshot = snapshot
            self._loads += 1
            self._cond.notify_all()
        logger.debug("schema cache loaded: %s", snapshot.summary())

    def _run(self, ready: threading.Event) -> None:
        backoff = 1.0
        reconnected = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._dsn, autocommit=True, application_name="parlant-supabase-listener"
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {_MARKER_CHANNEL}")
                    ready.set()
                    if reconnected:
                        self._reload_after_reconnect()
                    backoff = 1.0
                    self._listen_on(conn)
            except (psycopg.Error, SchemaCacheError, OSError) as exc:
                if self._stop.is_set():
                    break
                logger.warning("schema cache listener lost its connection (%s); retrying in %.0f s", exc, backoff)
                reconnected = True
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, _MAX_BACKOFF)

    def _reload_after_reconnect(self) -> None:
        """Notifications may have been lost while we were away: reload, as PostgREST does."""
        with self._cond:
            settled = set(self._pending_markers)
        self._load()
        with self._cond:
            self._done_markers.update(settled)
            self._cond.notify_all()

    def _listen_on(self, conn: psycopg.Connection[Any]) -> None:
        """Wait for notifications; each batch that asks for it causes one reload."""
        pgconn = conn.pgconn
        while not self._stop.is_set():
            readable, _, _ = select.select([pgconn.socket], [], [], _POLL)
            if not readable:
                continue
            pgconn.consume_input()
            reload = False
            markers: list[str] = []
            while (note := pgconn.notifies()) is not None:
                channel = note.relname.decode()
                payload = note.extra.decode("utf-8", "replace")
                if channel == _MARKER_CHANNEL:
                    markers.append(payload)
                elif channel == CHANNEL and payload in _RELOAD_PAYLOADS:
                    reload = True
            if pgconn.status != psycopg.pq.ConnStatus.OK:
                raise SchemaCacheError("listener connection closed")
            if reload:
                self._reload_logged()
            if markers:
                with self._cond:
                    self._done_markers.update(markers)
                    self._cond.notify_all()

    def _reload_logged(self) -> None:
        try:
            self._load()
        except SchemaCacheError:
            # PostgREST keeps serving the old cache and retries; so do we, on the next request
            # for a reload or after a reconnect.
            logger.exception("schema cache reload failed; keeping the previous cache")
