"""The generated SQL against a real PostgreSQL: idempotence, the upgrade from the seed's tables,
and the two RPC functions (merge semantics, concurrency, refusal, schema report).

Each test gets its own database in the local stand-in's cluster (or, until the stand-in can
start, a throwaway cluster), bootstrapped like a Supabase project that no longer auto-grants
new tables to the API roles, so the generated GRANTs are what gives service_role access.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")

from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo

from parlant_supabase_sync import ddl, ddl_upgrade
from parlant_supabase_sync.ddl_functions import RECEIPTS_TABLE
from parlant_supabase_sync.naming import DEFAULT_STORES, all_table_names

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


# --- servers and databases ---------------------------------------------------------------------


def _stand_in_available() -> bool:
    return all(
        importlib.util.find_spec(f"parlant_supabase_sync.local.{name}") is not None
        for name in ("stack", "gateway", "engine")
    )


@pytest.fixture(scope="module")
def admin_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """A superuser DSN: the `local_supabase` fixture's cluster, else a throwaway one."""
    if _stand_in_available():
        yield request.getfixturevalue("local_supabase").database_url
        return
    from parlant_supabase_sync.local.postgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server.superuser_dsn
    finally:
        server.stop()


class Database:
    """One scratch database; `sql()` runs a script as superuser."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def connect(self, **kwargs: Any) -> Any:
        return psycopg.connect(self.dsn, autocommit=True, **kwargs)

    def sql(self, script: str) -> list[str]:
        """Run a script; returns the WARNING/NOTICE messages it raised."""
        notices: list[str] = []
        with self.connect() as conn:
            conn.add_notice_handler(
                lambda diag: notices.append(
                    f"{diag.severity_nonlocalized}: {diag.message_primary}"
                )
            )
            conn.execute(script.encode())
        return notices

    def rows(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return list(conn.execute(query, params).fetchall())


def _create_database(admin: str, *, icu_locale: str | None) -> Database:
    name = f"ddl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        created = False
        if icu_locale is not None:
            try:
                conn.execute(
                    f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu "
                    f"ICU_LOCALE '{icu_locale}' LOCALE 'C.utf8'"
                )
                created = True
            except psycopg.Error:
                created = False
        if not created:
            conn.execute(f"CREATE DATABASE {name}")
    database = Database(make_conninfo(admin, dbname=name))
    from parlant_supabase_sync.local.bootstrap import bootstrap

    with database.connect() as conn:
        bootstrap(conn, default_grants=False)
    return database


def _drop_databases(admin: str, dsns: list[str]) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        for dsn in dsns:
            name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def make_database(admin_dsn: str) -> Iterator[Any]:
    """`make_database(icu_locale=None)` → a fresh bootstrapped database, dropped afterwards."""
    created: list[str] = []

    def make(icu_locale: str | None = None) -> Database:
        database = _create_database(admin_dsn, icu_locale=icu_locale)
        created.append(database.dsn)
        return database

    yield make
    _drop_databases(admin_dsn, created)


@pytest.fixture
def db(make_database: Any) -> Database:
    """A pristine database with sql/all.sql applied (for catalog comparisons)."""
    database: Database = make_database()
    database.sql(read_sql("all.sql"))
    return database


@pytest.fixture(scope="module")
def shared(admin_dsn: str) -> Iterator[Database]:
    """One database with sql/all.sql applied for the function tests (each uses its own ids)."""
    database = _create_database(admin_dsn, icu_locale=None)
    database.sql(read_sql("all.sql"))
    yield database
    _drop_databases(admin_dsn, [database.dsn])


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


# --- catalog snapshots -------------------------------------------------------------------------

_SNAPSHOT_QUERIES = {
    "tables": """
        SELECT c.relname, c.relkind, c.relrowsecurity, obj_description(c.oid, 'pg_class'),
               c.relacl::text
          FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
         ORDER BY 1""",
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
               co.collname, a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          LEFT JOIN pg_collation co ON co.oid = a.attcollation
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
           AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
          FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
         WHERE schemaname = 'public' ORDER BY 1, 2""",
    "policies": """
        SELECT tablename, policyname, cmd, roles::text, qual, with_check FROM pg_policies
         WHERE schemaname = 'public' ORDER BY 1, 2""",
    "functions": """
        SELECT proname, pg_get_function_identity_arguments(oid), md5(prosrc), provolatile,
               prosecdef, proconfig::text, proacl::text, obj_description(oid, 'pg_proc')
          FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1, 2""",
}
# Physical identity: a no-op re-run must not recreate or rewrite anything.
_STORAGE_QUERY = """
    SELECT c.relname, c.oid::bigint, c.relfilenode::bigint FROM pg_class c
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i')
     UNION ALL
    SELECT p.proname, p.oid::bigint, 0 FROM pg_proc p
     WHERE p.pronamespace = 'public'::regnamespace
     ORDER BY 1"""


def snapshot(
    database: Database, *, storage: bool = False
) -> dict[str, list[tuple[Any, ...]]]:
    result = {key: database.rows(query) for key, query in _SNAPSHOT_QUERIES.items()}
    if storage:
        result["storage"] = database.rows(_STORAGE_QUERY)
    return result


def default_tables() -> list[str]:
    return [
        name
        for spec in DEFAULT_STORES.values()
        for name in all_table_names(spec.prefix, spec.collections)
    ]


# --- the seed's setup, reproduced as test data -------------------------------------------------


def seed_like_sql() -> str:
    """Tables, indexes, RLS and allow-all policies as the older adapter's docs set them up.

    Names are written out in full and unquoted, so PostgreSQL cuts the long ones itself.
    """
    layout = {
        "parlant_sessions_": ["", "events", "metadata"],
        "parlant_customers_": ["", "customer_tag_associations", "metadata"],
        "parlant_context_variables_": [
            "",
            "variable_tag_associations",
            "values",
            "metadata",
        ],
    }
    statements = []
    tables = []
    for prefix, suffixes in layout.items():
        for suffix in suffixes:
            table = prefix + suffix
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {table} (id TEXT NOT NULL PRIMARY KEY, version TEXT, "
                "creation_utc TEXT, session_id TEXT, customer_id TEXT, agent_id TEXT, "
                "data JSONB NOT NULL DEFAULT '{}'::jsonb);"
            )
            statements.append(
                f"CREATE INDEX IF NOT EXISTS idx_{table}_creation_utc ON {table} (creation_utc);"
            )
            partial = (
                ["session_id", "customer_id", "agent_id"]
                if suffix == ""
                else ["session_id"]
                if suffix == "events"
                else []
            )
            for column in partial:
                statements.append(
                    f"CREATE INDEX IF NOT EXISTS idx_{table}_{column} ON {table} ({column}) "
                    f"WHERE {column} IS NOT NULL;"
                )
            if suffix != "metadata":
                statements.append(
                    f"CREATE INDEX IF NOT EXISTS idx_{table}_data_gin ON {table} USING GIN (data);"
                )
            tables.append(table)
            if suffix != "metadata":
                failed = f"{table}_failed_migrations"
                statements.append(
                    f"CREATE TABLE IF NOT EXISTS {failed} (id TEXT, data JSONB DEFAULT '{{}}'::jsonb);"
                )
                tables.append(failed)
    for table in tables:
        statements.append(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;")
        statements.append(
            f'CREATE POLICY "Allow all operations on {table}" ON {table} '
            "FOR ALL USING (true) WITH CHECK (true);"
        )
    return "\n".join(statements)


# --- helpers for the functions -----------------------------------------------------------------


def as_service_role(database: Database) -> Any:
    conn = database.connect()
    # What PostgREST does for each request: switch role, set the API schema as search_path.
    conn.execute("SET ROLE service_role")
    conn.execute("SET search_path = public")
    return conn


def write(conn: Any, table: str, operation: str, args: Any, request_id: str | None = None) -> Any:
    row = conn.execute(
        "SELECT parlant_write(p_request_id => %s, p_table => %s, p_operation => %s, "
        "p_args => %s::jsonb)",
        (request_id or uuid.uuid4().hex, table, operation, json.dumps(args)),
    ).fetchone()
    return row[0]


def merge(
    conn: Any, table: str, doc_id: str, params: dict[str, Any], upsert: bool = False
) -> Any:
    outcome = write(conn, table, "merge", {"id": doc_id, "params": params, "upsert": upsert})
    return outcome["document"]


def insert(conn: Any, table: str, document: dict[str, Any]) -> None:
    # Through the merge function's upsert, which derives the mirrored columns.
    merge(conn, table, document["id"], document, upsert=True)


def row_columns(conn: Any, table: str, doc_id: str) -> dict[str, Any]:
    cursor = conn.execute(
        f'SELECT id, version, creation_utc, session_id, customer_id, agent_id, data FROM "{table}" '
        "WHERE id = %s",
        (doc_id,),
    )
    names = [column.name for column in cursor.description]
    row = cursor.fetchone()
    assert row is not None, f"no row {doc_id!r} in {table}"
    return dict(zip(names, row))


# --- idempotence -------------------------------------------------------------------------------


def test_all_sql_applied_twice_changes_nothing(db: Database) -> None:
    before = snapshot(db, storage=True)
    db.sql(read_sql("all.sql"))
    assert snapshot(db, storage=True) == before
    assert {row[0] for row in before["tables"]} == {*default_tables(), RECEIPTS_TABLE}


def test_store_files_plus_functions_equal_all_sql(
    db: Database, make_database: Any
) -> None:
    pieces = make_database()
    for name in (
        "functions.sql",
        *(f"{spec.prefix}.sql" for spec in DEFAULT_STORES.values()),
    ):
        pieces.sql(read_sql(name))
    assert snapshot(pieces) == snapshot(db)


def test_text_columns_have_the_c_collation(shared: Database) -> None:
    rows = shared.rows(
        """SELECT c.relname, a.attname, co.collname FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_collation co ON co.oid = a.attcollation
            WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY (%s)
              AND a.atttypid = 'text'::regtype AND a.attnum > 0""",
        (default_tables(),),
    )
    main_tables = sum(len(spec.collections) for spec in DEFAULT_STORES.values())
    failed_tables = len(default_tables()) - main_tables
    # Six mirrored text columns per main table; id and failed_utc per failed table.
    assert len(rows) == 6 * main_tables + 2 * failed_tables
    assert {collation for _, _, collation in rows} == {"C"}


def test_anon_and_authenticated_get_nothing_by_default(shared: Database) -> None:
    with shared.connect() as conn:
        for role in ("anon", "authenticated"):
            conn.execute(f"SET ROLE {role}")
            with pytest.raises(pg_errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM public.parlant_sessions_")
            conn.execute("RESET ROLE")


def test_allow_all_and_per_customer_variants_apply_twice(make_database: Any) -> None:
    for policy in ("allow-all", "per-customer"):
        database = make_database()
        script = ddl.generate_schema(
            ddl.default_stores(), policy, include_functions=True
        )
        database.sql(script)
        before = snapshot(database, storage=True)
        database.sql(script)
        assert snapshot(database, storage=True) == before
        assert before["policies"]


def test_per_customer_policy_shows_a_signed_in_user_only_their_rows(
    make_database: Any,
) -> None:
    database = make_database()
    database.sql(
        ddl.generate_schema(
            ddl.default_stores(), "per-customer", include_functions=True
        )
    )
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    with as_service_role(database) as conn:
        insert(conn, "parlant_sessions_", {"id": "s1", "customer_id": mine})
        insert(conn, "parlant_sessions_", {"id": "s2", "customer_id": theirs})
    with database.connect() as conn:
        conn.execute("BEGIN")
        conn.execute(
            "SELECT set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": mine, "role": "authenticated"}),),
        )
        conn.execute("SET LOCAL ROLE authenticated")
        assert conn.execute("SELECT id FROM public.parlant_sessions_").fetchall() == [
            ("s1",)
        ]
        with pytest.raises(pg_errors.InsufficientPrivilege):
            conn.execute("DELETE FROM public.parlant_sessions_")
        conn.execute("ROLLBACK")


# --- upgrade from the seed ---------------------------------------------------------------------


def test_upgrade_from_seed_reaches_the_fresh_schema_and_keeps_everything(
    db: Database, make_database: Any
) -> None:
    seeded = make_database(icu_locale="en-US")
    seeded.sql(seed_like_sql())
    ids = ["b", "B", "a", "A", "_x", "Z9", "é"]
    with seeded.connect() as conn:
        for doc_id in ids:
            conn.execute(
                "INSERT INTO parlant_sessions_ (id, creation_utc, data) VALUES (%s, '2025', %s)",
                (doc_id, json.dumps({"id": doc_id, "creation_utc": "2025"})),
            )
        conn.execute(
            "INSERT INTO parlant_sessions_events_failed_migrations (id, data) VALUES ('old', '{}')"
        )
    seed_policies = snapshot(seeded)["policies"]
    # The database collation (ICU en-US) orders "a" before "B"; Python does the opposite.
    unordered = [
        row[0] for row in seeded.rows("SELECT id FROM parlant_sessions_ ORDER BY id")
    ]
    assert unordered != sorted(ids)

    first_notices = seeded.sql(read_sql("upgrade_from_seed.sql"))
    assert not [notice for notice in first_notices if notice.startswith("WARNING")]
    after_first = snapshot(seeded, storage=True)
    seeded.sql(read_sql("upgrade_from_seed.sql"))
    assert snapshot(seeded, storage=True) == after_first

    fresh = snapshot(db)
    upgraded = snapshot(seeded)
    for key in ("tables", "columns", "constraints", "indexes", "functions"):
        assert upgraded[key] == fresh[key], key
    # The seed's allow-all policies are dropped (and no other policy is made), so the upgraded
    # database equals a fresh install, privileges included.
    assert len(seed_policies) == len(default_tables())
    assert upgraded["policies"] == fresh["policies"] == []
    # Data kept; rows that failed before the upgrade have no failure time.
    assert seeded.rows("SELECT count(*) FROM parlant_sessions_") == [(len(ids),)]
    assert seeded.rows(
        "SELECT failed_utc FROM parlant_sessions_events_failed_migrations"
    ) == [(None,)]
    # Ordering is Python's code-point order although the database collation is ICU en-US.
    ordered = [
        row[0] for row in seeded.rows("SELECT id FROM parlant_sessions_ ORDER BY id")
    ]
    assert ordered == sorted(ids)


def test_upgrade_keeping_the_seed_policies_keeps_them_working(make_database: Any) -> None:
    seeded = make_database()
    seeded.sql(seed_like_sql())
    seed_policies = snapshot(seeded)["policies"]
    seeded.sql(ddl_upgrade.generate_upgrade(keep_seed_policies=True))
    assert snapshot(seeded)["policies"] == seed_policies
    with seeded.connect() as conn:
        conn.execute("SET ROLE anon")
        conn.execute(
            "INSERT INTO public.parlant_sessions_ (id, data) VALUES ('kept', '{}')"
        )
        assert conn.execute("SELECT id FROM public.parlant_sessions_").fetchall() == [("kept",)]
        # Only what the policies need: no TRUNCATE, no TRIGGER.
        with pytest.raises(pg_errors.InsufficientPrivilege):
            conn.execute("TRUNCATE public.parlant_sessions_")


def test_upgrade_reports_instead_of_failing_when_a_policy_pins_a_column(
    make_database: Any,
) -> None:
    seeded = make_database()
    seeded.sql(seed_like_sql())
    seeded.sql(
        'CREATE POLICY "Users can access own sessions" ON parlant_sessions_ FOR ALL '
        "USING (auth.uid()::text = customer_id) WITH CHECK (auth.uid()::text = customer_id);"
    )
    notices = seeded.sql(read_sql("upgrade_from_seed.sql"))
    warnings = [notice for notice in notices if notice.startswith("WARNING")]
    assert len(warnings) == 1
    assert "parlant_sessions_.customer_id" in warnings[0]
    collations = dict(
        seeded.rows(
            """SELECT a.attname::text, co.collname::text FROM pg_attribute a
                 JOIN pg_collation co ON co.oid = a.attcollation
                WHERE a.attrelid = 'public.parlant_sessions_'::regclass AND a.attnum > 0
                  AND a.atttypid = 'text'::regtype"""
        )
    )
    assert collations.pop("customer_id") == "default"
    assert set(collations.values()) == {"C"}


def test_upgrade_creates_tables_the_seed_never_had(make_database: Any) -> None:
    partial = make_database()
    partial.sql(
        "CREATE TABLE parlant_sessions_ (id TEXT NOT NULL PRIMARY KEY, version TEXT, "
        "creation_utc TEXT, session_id TEXT, customer_id TEXT, agent_id TEXT, "
        "data JSONB NOT NULL DEFAULT '{}'::jsonb);"
    )
    partial.sql(read_sql("upgrade_from_seed.sql"))
    names = {row[0] for row in snapshot(partial)["tables"]}
    assert names == {*default_tables(), RECEIPTS_TABLE}


# --- parlant_write: merge -----------------------------------------------------------------------


def test_merge_is_a_shallow_top_level_merge(shared: Database) -> None:
    s = unique("s")
    with as_service_role(shared) as conn:
        insert(
            conn, "parlant_sessions_", {"id": s, "meta": {"a": 1, "b": 2}, "title": "t"}
        )
        merged = merge(
            conn, "parlant_sessions_", s, {"meta": {"c": 3}, "title": None, "data": 7}
        )
        assert merged == {"id": s, "meta": {"c": 3}, "title": None, "data": 7}
        assert row_columns(conn, "parlant_sessions_", s)["data"] == merged


def test_concurrent_merges_of_disjoint_keys_both_survive(shared: Database) -> None:
    s = unique("s")
    with as_service_role(shared) as setup:
        insert(setup, "parlant_sessions_", {"id": s, "base": True})
    first = as_service_role(shared)
    second = as_service_role(shared)
    expected = {"id": s, "base": True, "left": 1, "right": 2}
    try:
        first.execute("BEGIN")
        merge(first, "parlant_sessions_", s, {"left": 1})  # holds the row lock
        second_pid = second.execute("SELECT pg_backend_pid()").fetchone()[0]
        outcome: dict[str, Any] = {}

        def run_second() -> None:
            try:
                outcome["merged"] = merge(second, "parlant_sessions_", s, {"right": 2})
            except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
                outcome["error"] = exc

        thread = threading.Thread(target=run_second)
        thread.start()
        with shared.connect() as watcher:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                waiting = watcher.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                    (second_pid,),
                ).fetchone()
                if waiting and waiting[0] == "Lock":
                    break
                time.sleep(0.02)
            else:
                pytest.fail(
                    "the second merge never waited for the first one's row lock"
                )
        first.execute("COMMIT")
        thread.join(10)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["merged"] == expected
    finally:
        first.close()
        second.close()
    with as_service_role(shared) as conn:
        assert row_columns(conn, "parlant_sessions_", s)["data"] == expected


def test_merge_recomputes_every_mirrored_column(shared: Database) -> None:
    old, new = unique("v"), unique("v")
    table = "parlant_context_variables_values"
    with as_service_role(shared) as conn:
        insert(
            conn, table, {"id": old, "version": "0.3.0", "creation_utc": "2025-01-01"}
        )
        merged = merge(
            conn,
            table,
            old,
            {
                "id": new,
                "creation_utc": "2025-02-02",
                "version": "0.4.0",
                "agent_id": "ag",
            },
        )
        assert merged["id"] == new
        columns = row_columns(conn, table, new)
        assert (columns["id"], columns["creation_utc"], columns["version"]) == (
            new,
            "2025-02-02",
            "0.4.0",
        )
        assert columns["agent_id"] == "ag"
        assert conn.execute(
            f"SELECT count(*) FROM {table} WHERE id = %s", (old,)
        ).fetchone() == (0,)


def test_non_string_values_leave_the_mirrored_column_null(shared: Database) -> None:
    s = unique("s")
    with as_service_role(shared) as conn:
        insert(
            conn, "parlant_sessions_", {"id": s, "customer_id": "c1", "agent_id": "a1"}
        )
        merge(conn, "parlant_sessions_", s, {"customer_id": 42, "agent_id": None})
        columns = row_columns(conn, "parlant_sessions_", s)
        assert columns["customer_id"] is None and columns["agent_id"] is None
        assert columns["data"]["customer_id"] == 42


def test_merge_without_a_match_returns_null_or_upserts(shared: Database) -> None:
    table = "parlant_sessions_events"
    missing, event = unique("nope"), unique("e")
    with as_service_role(shared) as conn:
        assert merge(conn, table, missing, {"x": 1}) is None
        assert conn.execute(
            f"SELECT count(*) FROM {table} WHERE id = %s", (missing,)
        ).fetchone() == (0,)
        document = {"id": event, "session_id": "s1", "offset": 0, "deleted": False}
        assert merge(conn, table, missing, document, upsert=True) == document
        assert row_columns(conn, table, event)["session_id"] == "s1"
        # Upserting the same id again merges instead of failing on the primary key.
        again = merge(conn, table, event, {"id": event, "deleted": True}, upsert=True)
        assert again == {**document, "deleted": True}


def test_merge_refuses_tables_that_are_not_document_tables(shared: Database) -> None:
    shared.sql(
        "CREATE TABLE IF NOT EXISTS public.other (id text PRIMARY KEY, data jsonb);"
        "GRANT ALL ON public.other TO service_role;"
    )
    with as_service_role(shared) as conn:
        for table in ("other", "parlant_sessions__failed_migrations"):
            with pytest.raises(pg_errors.RaiseException) as info:
                merge(conn, table, "x", {"a": 1})
            assert info.value.sqlstate == "P0001"
            assert str(info.value.diag.message_primary).startswith(
                "parlant-supabase-sync:"
            )
        with pytest.raises(pg_errors.UndefinedTable) as missing:
            merge(conn, "no_such_table", "x", {})
        assert str(missing.value.diag.message_primary).startswith(
            "parlant-supabase-sync:"
        )
        with pytest.raises(pg_errors.RaiseException, match="JSON object"):
            write(conn, "parlant_sessions_", "merge", {"id": "x", "params": [1]})
        with pytest.raises(pg_errors.RaiseException, match="id must be a string"):
            merge(conn, "parlant_sessions_", "x", {"id": 5})


def test_functions_generated_for_a_schema_write_into_that_schema(shared: Database) -> None:
    schema = f"api_{uuid.uuid4().hex[:8]}"
    shared.sql(
        f"CREATE SCHEMA {schema}; GRANT USAGE ON SCHEMA {schema} TO service_role;"
        + ddl.generate_schema(
            {"parlant_sessions_": ["sessions"]}, schema=schema, include_functions=True
        )
    )
    doc_id = unique("x")
    with shared.connect() as conn:
        conn.execute("SET ROLE service_role")
        conn.execute("SET search_path = public")  # ignored: the function's search_path is ''
        conn.execute(
            f"SELECT {schema}.parlant_write(%s, 'parlant_sessions_', 'insert', %s::jsonb)",
            (uuid.uuid4().hex, json.dumps({"document": {"id": doc_id}})),
        )
    assert shared.rows(f"SELECT id FROM {schema}.parlant_sessions_") == [(doc_id,)]
    assert (
        shared.rows("SELECT id FROM public.parlant_sessions_ WHERE id = %s", (doc_id,))
        == []
    )


def test_a_repeated_request_id_returns_the_recorded_outcome(shared: Database) -> None:
    table = "parlant_sessions_events"
    event, request = unique("e"), uuid.uuid4().hex
    with as_service_role(shared) as conn:
        first = write(conn, table, "insert", {"document": {"id": event, "n": 1}}, request)
        again = write(conn, table, "insert", {"document": {"id": event, "n": 1}}, request)
        assert first == {"inserted": 1}
        assert again == {"inserted": 1, "replayed": True}
        deleted = write(conn, table, "delete", {"id": event}, request + "d")
        assert deleted == {"deleted": {"id": event, "n": 1}}
        assert write(conn, table, "delete", {"id": event}, request + "d")["deleted"] == {
            "id": event,
            "n": 1,
        }
        with pytest.raises(pg_errors.RaiseException, match="another write"):
            write(conn, table, "clear", {}, request)


def test_fail_moves_documents_to_the_failed_table_in_one_statement(shared: Database) -> None:
    table, failed = "parlant_sessions_events", "parlant_sessions_events_failed_migrations"
    doc = unique("e")
    with as_service_role(shared) as conn:
        write(conn, table, "insert", {"document": {"id": doc, "bad": True}})
        moved = write(
            conn, table, "fail", {"ids": [doc], "failed_table": failed, "failed_utc": "now"}
        )
        assert moved == {"failed": 1}
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE id = %s", (doc,)).fetchone() == (0,)
        assert conn.execute(
            f"SELECT data, failed_utc FROM {failed} WHERE id = %s", (doc,)
        ).fetchone() == ({"id": doc, "bad": True}, "now")


# --- parlant_schema_report ---------------------------------------------------------------------


def test_schema_report_describes_tables_and_functions(shared: Database) -> None:
    shared.sql(
        "CREATE TABLE IF NOT EXISTS public.plain (id text);"
        "GRANT SELECT ON public.plain TO service_role;"
    )
    with as_service_role(shared) as conn:
        report = conn.execute(
            "SELECT parlant_schema_report(p_tables => %s)",
            (
                [
                    "parlant_sessions_",
                    "parlant_sessions__failed_migrations",
                    "plain",
                    "missing",
                ],
            ),
        ).fetchone()[0]
    assert report["functions"]["parlant_write"] is True
    assert report["functions"]["parlant_schema_report"] is True
    assert report["receipts"] is True
    assert report["schema"] == "public"
    tables = report["tables"]
    no_grants = {"anon": [], "authenticated": [], "public": []}
    assert tables["parlant_sessions_"] == {
        "exists": True,
        "adapter": True,
        "kind": "document",
        "rls": True,
        "access": True,
        "policies": [],
        "grants": no_grants,
    }
    assert report["receipts_table"] == {"rls": True, "policies": [], "grants": no_grants}
    assert {"parlant_write", "parlant_schema_report"} <= set(report["function_grants"])
    assert all(
        grants == {"anon": False, "authenticated": False, "public": False}
        for grants in report["function_grants"].values()
    )
    assert report["legacy_functions"] == {"parlant_merge_document": False}
    assert tables["parlant_sessions__failed_migrations"]["adapter"] is True
    assert tables["parlant_sessions__failed_migrations"]["kind"] == "failed-migrations"
    assert tables["plain"] == {
        "exists": True,
        "adapter": False,
        "kind": None,
        "rls": False,
        "access": False,
        "policies": [],
        "grants": no_grants,
    }
    assert (
        tables["missing"]["exists"] is False and tables["missing"]["adapter"] is False
    )


def test_schema_report_flags_seed_tables_until_upgraded(make_database: Any) -> None:
    seeded = make_database()
    seeded.sql(seed_like_sql())
    seeded.sql(read_sql("functions.sql"))
    seeded.sql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO service_role;")
    query = "SELECT parlant_schema_report(%s)"
    with as_service_role(seeded) as conn:
        before = conn.execute(query, (default_tables(),)).fetchone()[0]["tables"]
    assert all(entry["exists"] and not entry["adapter"] for entry in before.values())
    seeded.sql(read_sql("upgrade_from_seed.sql"))
    with as_service_role(seeded) as conn:
        after = conn.execute(query, (default_tables(),)).fetchone()[0]["tables"]
    assert all(
        entry["adapter"] and entry["rls"] and entry["access"]
        for entry in after.values()
    )


def test_schema_report_works_when_the_functions_are_all_there_is(
    make_database: Any,
) -> None:
    database = make_database()
    database.sql(read_sql("functions.sql"))
    with as_service_role(database) as conn:
        report = conn.execute("SELECT parlant_schema_report(%s)", (["a"],)).fetchone()[
            0
        ]
        empty = conn.execute("SELECT parlant_schema_report(NULL)").fetchone()[0]
    assert report["tables"] == {
        "a": {
            "exists": False,
            "adapter": False,
            "kind": None,
            "rls": False,
            "access": False,
            "policies": [],
            "grants": {},
        }
    }
    assert report["receipts_table"]["rls"] is True
    assert empty["tables"] == {}


def test_schema_report_shows_what_the_browser_roles_can_reach(make_database: Any) -> None:
    database = make_database()
    database.sql(ddl.generate_schema(ddl.default_stores(), "allow-all", include_functions=True))
    database.sql(
        "GRANT SELECT (request_id) ON public.parlant_write_receipts TO anon;"
        "GRANT TRUNCATE ON public.parlant_customers_ TO authenticated;"
        "GRANT EXECUTE ON FUNCTION public.parlant_write(text, text, text, jsonb) TO PUBLIC;"
        "CREATE FUNCTION public.parlant_merge_document(a text, b text, c jsonb, d boolean) "
        "RETURNS void LANGUAGE sql AS 'SELECT';"
        "ALTER TABLE public.parlant_sessions_events DISABLE ROW LEVEL SECURITY;"
    )
    with as_service_role(database) as conn:
        report = conn.execute(
            "SELECT parlant_schema_report(%s)",
            (["parlant_sessions_events", "parlant_customers_"],),
        ).fetchone()[0]
    events = report["tables"]["parlant_sessions_events"]
    assert events["rls"] is False
    assert events["policies"] == [
        {
            "name": "Allow all operations on parlant_sessions_events",
            "roles": ["public"],
            "cmd": "ALL",
            "permissive": True,
        }
    ]
    crud = ["SELECT", "INSERT", "UPDATE", "DELETE"]
    assert events["grants"] == {"anon": crud, "authenticated": crud, "public": []}
    customers = report["tables"]["parlant_customers_"]
    assert customers["grants"]["authenticated"] == [*crud, "TRUNCATE"]
    # A column grant counts.
    assert report["receipts_table"]["grants"]["anon"] == ["SELECT"]
    # EXECUTE for PUBLIC reaches every role.
    assert report["function_grants"]["parlant_write"] == {
        "anon": True, "authenticated": True, "public": True,
    }  # fmt: skip
    assert report["function_grants"]["parlant_schema_report"]["anon"] is False
    assert report["legacy_functions"] == {"parlant_merge_document": True}


def test_generated_sql_runs_on_a_postgresql_without_the_browser_roles() -> None:
    """The revokes of anon/authenticated are guarded: a plain PostgreSQL with only a
    service_role (no anon, no authenticated; roles are cluster-wide, hence its own cluster)
    takes every generated script."""
    from parlant_supabase_sync.local.postgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        database = Database(server.superuser_dsn)
        database.sql("CREATE ROLE service_role NOLOGIN BYPASSRLS")
        database.sql(read_sql("all.sql"))
        database.sql(seed_like_sql())
        database.sql(read_sql("upgrade_from_seed.sql"))
        assert {row[0] for row in database.rows("SELECT rolname FROM pg_roles")} & {
            "anon", "authenticated"
        } == set()  # fmt: skip
    finally:
        server.stop()
