"""pytest plugin: a local Supabase stand-in for tests, in the style of pytest-postgresql.

Registered as the `parlant_supabase_sync` pytest11 entry point, so it loads in every pytest run
where the package is installed; everything heavy is imported inside the fixtures.

Fixtures:

* `local_supabase` (session): a started `LocalSupabase` (PostgreSQL + PostgREST-protocol
  gateway) exposing `public` only, with no schema loaded. `local_supabase_env` exports its
  `env()` into `os.environ` for one test.
* `supabase_proc` (session): a stand-in that also exposes a pool of spare schemas
  (`pss_test_0` …), one of which each `supabase_db` test gets for itself.
* `supabase_db` (function): a `SupabaseTestDatabase`: a fresh PostgreSQL schema with the
  generated SQL of Parlant's three default stores (tables, functions, receipts) applied,
  settings and a key for it, ready `SyncDocumentDatabase`s and `connect()` connections; the
  schema is dropped afterwards. `supabase_db_env` exports its `env()` for one test.

Factories for other options (like `factories.postgresql_proc` / `factories.postgresql`)::

    from parlant_supabase_sync.local.pytest_plugin import factories

    capped_proc = factories.supabase_proc(max_rows=50, locale="icu:en-US")
    capped_db = factories.supabase_db(
        "capped_proc", stores={"acme_docs_": ("docs", "metadata")}, key="service_role",
        load=["INSERT INTO acme_docs_docs (id, data) VALUES ('d1', '{}')"],
    )

Isolation: with a proc that has spare schemas (`supabase_proc`, or any
`factories.supabase_proc(...)`), each test gets one of them to itself, so the default stores'
fixed prefixes are isolated too (`isolation="schema"`). On `local_supabase` (no spare
schemas) tables go to the default schema under a per-test prefix (`isolation="prefix"`:
`acme_docs_` becomes `t<hex8>_acme_docs_`; the default stores cannot be isolated this way).
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

import pytest

if TYPE_CHECKING:
    from parlant_supabase_sync.api import Connection
    from parlant_supabase_sync.core import SyncDocumentDatabase
    from parlant_supabase_sync.local.stack import LocalSupabase
    from parlant_supabase_sync.settings import SupabaseSettings

__all__ = [
    "DEFAULT_TEST_SCHEMAS",
    "KeyKind",
    "LoadItem",
    "SupabaseTestDatabase",
    "factories",
    "open_test_database",
]

KeyKind = Literal["secret", "service_role", "anon", "publishable"]
Isolation = Literal["auto", "schema", "prefix"]
#: An extra load step: SQL text, a `.sql` file, or a callable given the test database.
LoadItem = Union[str, "os.PathLike[str]", Callable[["SupabaseTestDatabase"], object]]
StoresSpec = Sequence[str] | Mapping[str, Sequence[str]] | None

#: How many spare schemas `factories.supabase_proc()` exposes by default.
DEFAULT_TEST_SCHEMAS = 8
_TEST_SCHEMA_PREFIX = "pss_test_"
_KEY_KINDS: tuple[str, ...] = ("secret", "service_role", "anon", "publishable")
_API_ROLES = ("anon", "authenticated", "service_role")


def _stack_class() -> type[LocalSupabase]:
    try:
        import psycopg  # noqa: F401  (imported lazily by the stack; fail here with advice)

        from parlant_supabase_sync.local.stack import LocalSupabase
    except ImportError as exc:
        raise RuntimeError(
            "the parlant_supabase_sync pytest fixtures need the `local` extra: "
            "pip install 'parlant-supabase-sync[local]'"
        ) from exc
    return LocalSupabase


# --- spare schemas per stand-in ---------------------------------------------------------------


class _SchemaPool:
    """The spare exposed schemas of one stand-in; a test holds one until its teardown."""

    def __init__(self, names: Sequence[str]) -> None:
        self._free = list(names)
        self._size = len(names)
        self._lock = threading.Lock()

    def acquire(self) -> str:
        with self._lock:
            if not self._free:
                raise RuntimeError(
                    f"all {self._size} spare schemas of this stand-in are in use; raise "
                    "factories.supabase_proc(test_schemas=N)"
                )
            # Round robin: the schema a test just released is the last to be reused.
            return self._free.pop(0)

    def release(self, name: str) -> None:
        with self._lock:
            self._free.append(name)


_POOLS: weakref.WeakKeyDictionary[Any, _SchemaPool] = weakref.WeakKeyDictionary()


# --- the per-test database --------------------------------------------------------------------


def _quote_ident(name: str) -> str:
    from parlant_supabase_sync.sqltext import quote_ident

    return quote_ident(name)


@dataclass
class SupabaseTestDatabase:
    """One test's own tables on a stand-in: settings, key, prefixes and ready clients.

    `stores` maps each table prefix to its collections, `prefixes` the names the test asked
    for (store keys such as `sessions`, or prefixes) to the prefixes actually used (equal in a
    test schema; with a per-test token in prefix isolation).
    """

    stand_in: LocalSupabase
    schema: str
    key_kind: KeyKind
    isolation: Literal["schema", "prefix"]
    stores: dict[str, tuple[str, ...]]
    prefixes: dict[str, str]
    settings: SupabaseSettings
    _closers: list[Callable[[], object]] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def key(self) -> str:
        """The API key the settings carry (`key_kind`: secret, service_role, anon, publishable)."""
        return self.settings.key.get_secret_value()

    @property
    def prefix(self) -> str:
        """The table prefix, when the test has exactly one store."""
        if len(self.stores) != 1:
            raise ValueError(
                f"this test database has {len(self.stores)} stores; use prefixes[name]: "
                + ", ".join(sorted(self.prefixes))
            )
        return next(iter(self.stores))

    def env(self) -> dict[str, str]:
        """SUPABASE_URL, SUPABASE_KEY and SUPABASE_SCHEMA for clients of this test's tables."""
        return {"SUPABASE_URL": self.url, "SUPABASE_KEY": self.key, "SUPABASE_SCHEMA": self.schema}

    def table(self, store: str, collection: str) -> str:
        """The (unqualified) table name of `collection` in `store` (a requested name or prefix)."""
        from parlant_supabase_sync.naming import table_name

        return table_name(self.prefixes.get(store, store), collection)

    def qualified(self, store: str, collection: str) -> str:
        """`"schema"."table"`, quoted, for SQL."""
        return f"{_quote_ident(self.schema)}.{_quote_ident(self.table(store, collection))}"

    def connect(self, **overrides: Any) -> Connection:
        """A `parlant_supabase_sync.api.Connection` on these settings (closed at teardown)."""
        from parlant_supabase_sync.api import Connection

        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        connection = Connection(settings)
        self._closers.append(connection.close)
        return connection

    def database(self, store: str | None = None, **overrides: Any) -> SyncDocumentDatabase:
        """A `SyncDocumentDatabase` on one store's prefix (closed at teardown)."""
        from parlant_supabase_sync.core import SyncDocumentDatabase

        prefix = self.prefix if store is None else self.prefixes.get(store, store)
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        database = SyncDocumentDatabase(settings, table_prefix=prefix)
        self._closers.append(database.close)
        return database

    def execute_sql(self, sql: str) -> None:
        """Run SQL as superuser with `search_path` set to this test's schema first."""
        quoted = _quote_ident(self.schema)
        self.stand_in.execute_sql(f"SET search_path TO {quoted}, public, extensions;\n{sql}")

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of one statement run as superuser (unqualified names: qualify with `qualified`)."""
        return self.stand_in.query(sql, params)

    def load(self, item: LoadItem) -> None:
        """Apply one extra load step: SQL text, a `.sql` file path, or a callable."""
        if isinstance(item, str):
            self.execute_sql(item)
        elif isinstance(item, os.PathLike):
            self.execute_sql(Path(item).read_text(encoding="utf-8"))
        elif callable(item):
            item(self)
        else:
            raise TypeError(f"load item must be SQL text, a path or a callable, not {item!r}")

    def close(self) -> None:
        """Close every client handed out (teardown does it)."""
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                close()


def _resolve_stores(stores: StoresSpec) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Requested name → (prefix, collections)."""
    from parlant_supabase_sync.errors import ConfigurationError
    from parlant_supabase_sync.naming import DEFAULT_STORES, validate_prefix

    if stores is None:
        stores = tuple(DEFAULT_STORES)
    resolved: dict[str, tuple[str, tuple[str, ...]]] = {}
    if isinstance(stores, Mapping):
        for prefix, collections in stores.items():
            spec = DEFAULT_STORES.get(prefix)
            if spec is not None and not collections:
                resolved[prefix] = (spec.prefix, spec.collections)
                continue
            names = tuple(collections)
            if not names:
                raise ConfigurationError(f"store {prefix!r} names no collections")
            validate_prefix(prefix, names)
            resolved[prefix] = (prefix, names)
        return resolved
    if isinstance(stores, str):
        stores = (stores,)
    for name in stores:
        spec = DEFAULT_STORES.get(name)
        if spec is None:
            matches = [s for s in DEFAULT_STORES.values() if s.prefix == name]
            if not matches:
                raise ConfigurationError(
                    f"unknown store {name!r}: name one of {', '.join(DEFAULT_STORES)}, or pass "
                    "stores={prefix: collections}"
                )
            spec = matches[0]
        resolved[name] = (spec.prefix, spec.collections)
    return resolved


def _key_for(stand_in: LocalSupabase, kind: str) -> str:
    if kind not in _KEY_KINDS:
        raise ValueError(f"key must be one of {', '.join(_KEY_KINDS)}, not {kind!r}")
    return {
        "secret": lambda: stand_in.secret_key,
        "service_role": lambda: stand_in.service_role_key,
        "anon": lambda: stand_in.anon_key,
        "publishable": lambda: stand_in.publishable_key,
    }[kind]()


def _default_schema(stand_in: LocalSupabase) -> str:
    # The first exposed schema; LocalSupabase keeps it private, `public` unless told otherwise.
    schemas: Sequence[str] = stand_in.schemas
    return schemas[0]


def _fresh_schema_sql(schema: str) -> str:
    quoted = _quote_ident(schema)
    roles = ", ".join(_quote_ident(role) for role in _API_ROLES)
    # What Supabase's docs have you run to use a custom exposed schema; the generated SQL then
    # revokes from anon/authenticated whatever its anon policy does not grant back.
    return (
        f"DROP SCHEMA IF EXISTS {quoted} CASCADE;\n"
        f"CREATE SCHEMA {quoted};\n"
        f"GRANT USAGE ON SCHEMA {quoted} TO {roles};\n"
    )


@contextlib.contextmanager
def open_test_database(
    stand_in: LocalSupabase,
    *,
    stores: StoresSpec = None,
    key: KeyKind = "secret",
    isolation: Isolation = "auto",
    load: Sequence[LoadItem] = (),
    anon_policy: str = "none",
    settings: Mapping[str, Any] | None = None,
) -> Iterator[SupabaseTestDatabase]:
    """Tables of their own on a started stand-in, dropped on exit (what `supabase_db` yields).

    `stores`: store keys (`"sessions"`, …; default: Parlant's three) or `{prefix: collections}`.
    `key`: which of the stand-in's keys the settings carry. `isolation`: `"schema"` (a spare
    schema of a `factories.supabase_proc` stand-in), `"prefix"` (the default schema, a per-test
    table prefix) or `"auto"` (schema when the stand-in has spare schemas). `load`: extra SQL
    text, `.sql` files or callables, applied in order after the generated SQL. `anon_policy`:
    as `parlant-supabase-sync sql --anon-policy`. `settings`: more `SupabaseSettings` fields.
    """
    from parlant_supabase_sync import ddl
    from parlant_supabase_sync.settings import SupabaseSettings

    api_key = _key_for(stand_in, key)
    pool = _POOLS.get(stand_in)
    if isolation == "auto":
        isolation = "schema" if pool is not None else "prefix"
    if isolation not in ("schema", "prefix"):
        raise ValueError(f"isolation must be 'auto', 'schema' or 'prefix', not {isolation!r}")
    requested = _resolve_stores(stores)
    schema: str
    if isolation == "schema":
        if pool is None:
            raise RuntimeError(
                "schema isolation needs a stand-in with spare schemas: use the supabase_proc "
                "fixture or factories.supabase_proc(...), or isolation='prefix'"
            )
        schema = ""  # acquired below, once nothing else can fail before the cleanup
        prefixes = {name: prefix for name, (prefix, _) in requested.items()}
    else:
        from parlant_supabase_sync.naming import DEFAULT_STORES, validate_prefix

        fixed = [
            name
            for name, (p, _) in requested.items()
            if name in DEFAULT_STORES or any(p == spec.prefix for spec in DEFAULT_STORES.values())
        ]
        if fixed:
            raise RuntimeError(
                f"Parlant's default stores ({', '.join(fixed)}) have fixed table prefixes, so "
                "prefix isolation cannot separate tests; use the supabase_proc stand-in "
                "(schema isolation) or stores={your_prefix: collections}"
            )
        schema = _default_schema(stand_in)
        token = f"t{uuid.uuid4().hex[:8]}_"
        prefixes = {}
        for name, (prefix, collections) in requested.items():
            prefixes[name] = validate_prefix(token + prefix, collections)
    layout = {prefixes[name]: collections for name, (_, collections) in requested.items()}
    extra = dict(settings or {})
    if key in ("anon", "publishable") and "allow_public_key" in SupabaseSettings.model_fields:
        # The client refuses public keys unless told; a test asking for one means it.
        extra.setdefault("allow_public_key", True)
    base = SupabaseSettings(url=stand_in.url, key=api_key, **extra)  # overrides checked here
    if isolation == "schema" and pool is not None:
        schema = pool.acquire()
    handle = SupabaseTestDatabase(
        stand_in=stand_in,
        schema=schema,
        key_kind=key,
        isolation=isolation,
        stores=dict(layout),
        prefixes=prefixes,
        settings=base.model_copy(update={"db_schema": schema}),
    )
    try:
        setup = _fresh_schema_sql(schema) if isolation == "schema" else ""
        setup += ddl.generate_schema(
            layout,
            anon_policy,  # type: ignore[arg-type]  # validated by the generator
            schema=schema,
            include_functions=True,
        )
        stand_in.execute_sql(setup)
        for item in load:
            handle.load(item)
        yield handle
    finally:
        handle.close()
        try:
            if isolation == "schema":
                stand_in.execute_sql(_fresh_schema_sql(schema))
            else:
                _drop_tables(stand_in, schema, layout)
        finally:
            if isolation == "schema" and pool is not None:
                pool.release(schema)


def _drop_tables(stand_in: LocalSupabase, schema: str, layout: Mapping[str, Sequence[str]]) -> None:
    from parlant_supabase_sync.naming import all_table_names

    names = [name for prefix, cols in layout.items() for name in all_table_names(prefix, cols)]
    if names:
        quoted = ", ".join(f"{_quote_ident(schema)}.{_quote_ident(name)}" for name in names)
        stand_in.execute_sql(f"DROP TABLE IF EXISTS {quoted} CASCADE;")


# --- factories --------------------------------------------------------------------------------


class _Factories:
    """`factories.supabase_proc(...)` and `factories.supabase_db(...)` build fixtures."""

    @staticmethod
    def supabase_proc(
        *,
        max_rows: int = 1000,
        locale: str | None = None,
        schemas: Sequence[str] = ("public",),
        test_schemas: int = DEFAULT_TEST_SCHEMAS,
        max_request_line: int | None = 8192,
        ddl_watch: bool = True,
        legacy_keys_enabled: bool = True,
        data_dir: str | None = None,
        scope: Literal["session", "package", "module", "class"] = "session",
        pgvector: bool | None = None,
    ) -> Any:
        """A fixture starting a `LocalSupabase` with these options (session scope by default).

        `schemas` are the exposed schemas (the first is the default); `test_schemas` spare
        schemas (`pss_test_0` …) are exposed after them, one per running `supabase_db` test.
        `pgvector=True` runs PostgreSQL 18 with pgvector (the `vector` extra); None follows
        `PARLANT_SUPABASE_TEST_PGVECTOR=1`.
        """
        if test_schemas < 0:
            raise ValueError("test_schemas must be 0 or more")
        spare = tuple(f"{_TEST_SCHEMA_PREFIX}{i}" for i in range(test_schemas))

        @pytest.fixture(scope=scope)
        def supabase_proc_fixture() -> Iterator[LocalSupabase]:
            options: dict[str, Any] = {}
            if locale is not None:
                options["locale"] = locale
            stack_class = _stack_class()
            with stack_class(
                max_rows=max_rows,
                schemas=(*schemas, *spare),
                max_request_line=max_request_line,
                ddl_watch=ddl_watch,
                legacy_keys_enabled=legacy_keys_enabled,
                data_dir=data_dir,
                pgvector=_want_pgvector(pgvector),
                **options,
            ) as stack:
                if spare:
                    _POOLS[stack] = _SchemaPool(spare)
                yield stack

        return supabase_proc_fixture

    @staticmethod
    def supabase_db(
        proc_fixture_name: str = "supabase_proc",
        *,
        stores: StoresSpec = None,
        key: KeyKind = "secret",
        isolation: Isolation = "auto",
        load: Sequence[LoadItem] = (),
        anon_policy: str = "none",
        settings: Mapping[str, Any] | None = None,
    ) -> Any:
        """A function-scoped fixture yielding a `SupabaseTestDatabase` on the stand-in that the
        fixture `proc_fixture_name` gives (see `open_test_database` for the options)."""
        if key not in _KEY_KINDS:
            raise ValueError(f"key must be one of {', '.join(_KEY_KINDS)}, not {key!r}")
        loads = tuple(load)

        @pytest.fixture
        def supabase_db_fixture(request: pytest.FixtureRequest) -> Iterator[SupabaseTestDatabase]:
            stand_in = request.getfixturevalue(proc_fixture_name)
            with open_test_database(
                stand_in,
                stores=stores,
                key=key,
                isolation=isolation,
                load=loads,
                anon_policy=anon_policy,
                settings=settings,
            ) as handle:
                yield handle

        return supabase_db_fixture


factories = _Factories()


# --- the fixtures -----------------------------------------------------------------------------


#: `PARLANT_SUPABASE_TEST_PGVECTOR=1` runs the default fixtures' stand-ins with pgvector.
PGVECTOR_ENV = "PARLANT_SUPABASE_TEST_PGVECTOR"


def _want_pgvector(pgvector: bool | None) -> bool:
    if pgvector is not None:
        return pgvector
    return os.environ.get(PGVECTOR_ENV, "") not in ("", "0")


@pytest.fixture(scope="session")
def local_supabase() -> Iterator[LocalSupabase]:
    """A started local Supabase stand-in (PostgreSQL + PostgREST-protocol gateway), one per session."""
    stack_class = _stack_class()
    with stack_class(pgvector=_want_pgvector(None)) as stack:
        yield stack


@pytest.fixture(scope="session")
def local_supabase_vector() -> Iterator[LocalSupabase]:
    """Like `local_supabase`, on PostgreSQL 18 with pgvector (extension `vector` in schema
    `extensions`); needs the `vector` extra."""
    stack_class = _stack_class()
    with stack_class(pgvector=True) as stack:
        yield stack


@pytest.fixture
def local_supabase_env(
    local_supabase: LocalSupabase, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """`local_supabase.env()` exported into `os.environ` for one test (restored afterwards)."""
    env = local_supabase.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


supabase_proc = factories.supabase_proc()
supabase_db = factories.supabase_db("supabase_proc")


@pytest.fixture
def supabase_db_env(
    supabase_db: SupabaseTestDatabase, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """`supabase_db.env()` (URL, key, schema) exported into `os.environ` for one test."""
    env = supabase_db.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
