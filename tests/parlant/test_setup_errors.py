"""supabase_stores() checks every store's tables in one request before anything is written.

Each test gets a schema of its own on the plugin's `supabase_proc` stand-in (`supabase_db`:
Parlant's three stores and the functions applied), then removes what the test needs missing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
from parlant.core.common import IdGenerator
from parlant.core.customers import CustomerDocumentStore
from parlant.core.persistence.common import MigrationRequired, ServerOutdated
from parlant.core.sessions import SessionDocumentStore

from parlant_supabase_sync.errors import ConfigurationError, SchemaMissing
from parlant_supabase_sync.facade import SupabaseDocumentDatabase
from parlant_supabase_sync.naming import DEFAULT_STORES, all_table_names
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.wiring import supabase_stores

if TYPE_CHECKING:
    from parlant_supabase_sync.local import LocalSupabase
    from parlant_supabase_sync.local.pytest_plugin import SupabaseTestDatabase

pytestmark = pytest.mark.anyio

STORE_TABLES = {
    key: all_table_names(spec.prefix, spec.collections) for key, spec in DEFAULT_STORES.items()
}


def rows_in_schema(db: SupabaseTestDatabase) -> dict[str, int]:
    """Rows of every table in the test's schema, counted in PostgreSQL."""
    tables = [
        name
        for (name,) in db.query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY 1",
            [db.schema],
        )
    ]
    counts = {}
    for table in tables:
        quoted = '"' + db.schema + '"."' + table + '"'
        counts[table] = db.query(f"SELECT count(*) FROM {quoted}")[0][0]
    return counts


def drop(db: SupabaseTestDatabase, tables: list[str]) -> None:
    db.execute_sql("".join(f'DROP TABLE "{db.schema}"."{t}";\n' for t in tables))


async def start_stores(db: SupabaseTestDatabase) -> SchemaMissing:
    db.stand_in.requests.clear()
    with pytest.raises(SchemaMissing) as caught:
        async with supabase_stores(db.settings, allow_migration=True):
            pass
    return caught.value


def assert_only_the_probe_was_sent(db: SupabaseTestDatabase) -> None:
    paths = [entry.path for entry in db.stand_in.requests.entries()]
    assert paths == ["/rest/v1/rpc/parlant_schema_report"], paths


async def test_no_tables_one_error_lists_every_store_and_nothing_is_written(
    supabase_db: SupabaseTestDatabase,
) -> None:
    everything = [name for tables in STORE_TABLES.values() for name in tables]
    drop(supabase_db, everything)
    error = await start_stores(supabase_db)
    assert_only_the_probe_was_sent(supabase_db)
    assert rows_in_schema(supabase_db) == {"parlant_write_receipts": 0}
    message = str(error)
    assert "\n" not in message
    for store, tables in STORE_TABLES.items():
        assert f"{store} store: {', '.join(tables)}" in message
    assert set(error.tables) == set(everything)
    assert f"`parlant-supabase-sync sql --schema {supabase_db.schema} > schema.sql`" in message
    # The stand-in's URL is loopback: the advice is psql, not the Supabase SQL editor.
    assert 'psql "$DATABASE_URL" -f schema.sql' in message
    assert "nothing was written" in message


async def test_some_tables_missing_in_two_stores_nothing_is_written(
    supabase_db: SupabaseTestDatabase,
) -> None:
    gone = ["parlant_sessions_events", "parlant_context_variables_values_failed_migrations"]
    drop(supabase_db, gone)
    error = await start_stores(supabase_db)
    assert_only_the_probe_was_sent(supabase_db)
    counts = rows_in_schema(supabase_db)
    assert "parlant_sessions_metadata" in counts and set(counts.values()) == {0}
    assert error.tables == tuple(gone)
    message = str(error)
    assert "sessions store: parlant_sessions_events;" in message
    assert "context_variables store: parlant_context_variables_values_failed_migrations" in message
    assert "customers store" not in message


async def test_missing_and_outdated_functions_are_in_the_same_error(
    supabase_db: SupabaseTestDatabase,
) -> None:
    drop(supabase_db, ["parlant_customers_customer_tag_associations"])
    supabase_db.execute_sql(
        f'DROP FUNCTION "{supabase_db.schema}".parlant_find(text, jsonb, jsonb, integer, boolean, jsonb);\n'
        f'CREATE FUNCTION "{supabase_db.schema}".parlant_merge_document(text, text, jsonb, boolean) '
        "RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;"
    )
    error = await start_stores(supabase_db)
    assert_only_the_probe_was_sent(supabase_db)
    message = str(error)
    assert "customers store: parlant_customers_customer_tag_associations" in message
    assert "missing SQL functions (parlant_find)" in message
    assert "parlant_merge_document" in message
    # Objects of an earlier release need the upgrade script, which also creates what is missing.
    assert (
        f"`parlant-supabase-sync sql --schema {supabase_db.schema} --upgrade > upgrade.sql`"
        in message
    )
    assert set(rows_in_schema(supabase_db).values()) == {0}


async def test_a_fresh_project_without_the_report_function_gets_the_same_command(
    supabase_db: SupabaseTestDatabase,
) -> None:
    schema = supabase_db.schema
    supabase_db.stand_in.execute_sql(
        f'DROP SCHEMA "{schema}" CASCADE; CREATE SCHEMA "{schema}"; '
        f'GRANT USAGE ON SCHEMA "{schema}" TO service_role;'
    )
    error = await start_stores(supabase_db)
    assert_only_the_probe_was_sent(supabase_db)
    message = str(error)
    assert "parlant_schema_report is missing" in message and "fresh project" in message
    assert f"`parlant-supabase-sync sql --schema {schema} > schema.sql`" in message
    assert rows_in_schema(supabase_db) == {}


async def test_a_ready_database_starts_all_three_stores(
    supabase_db: SupabaseTestDatabase,
) -> None:
    async with supabase_stores(supabase_db.settings) as stores:
        customer = await stores.customers.create_customer("Ada")
    assert rows_in_schema(supabase_db)["parlant_customers_"] == 1
    assert customer.name == "Ada"


def test_the_advice_for_a_hosted_project_is_the_sql_editor() -> None:
    from parlant_supabase_sync import wiring

    settings = SupabaseSettings(url="https://abc.supabase.co", key="sb_secret_x")
    error = wiring._setup_error(settings, {"sessions": ["parlant_sessions_"]}, [], [])
    assert (
        "`parlant-supabase-sync sql > schema.sql`, then execute schema.sql in the Supabase SQL editor"
        in str(error)
    )


# --- table_prefix -------------------------------------------------------------------------------


def test_a_forgotten_table_prefix_is_a_type_error() -> None:
    settings = SupabaseSettings(url="https://abc.supabase.co", key="sb_secret_x")
    with pytest.raises(TypeError, match="table_prefix"):
        SupabaseDocumentDatabase(logging.getLogger("t"), settings=settings)  # type: ignore[call-arg]


async def test_a_store_on_another_stores_prefix_is_told_the_prefix_to_use(
    supabase_db: SupabaseTestDatabase,
) -> None:
    def database() -> SupabaseDocumentDatabase:
        return SupabaseDocumentDatabase(
            logging.getLogger("t"), "parlant_sessions_", supabase_db.settings
        )

    async with database() as db, SessionDocumentStore(db):
        pass
    before = rows_in_schema(supabase_db)
    # Leaving the database's block turns Parlant's bare ServerOutdated into the clear error.
    with pytest.raises(ConfigurationError, match="table_prefix='parlant_customers_'") as caught:
        async with database() as db, CustomerDocumentStore(IdGenerator(), db):
            pass
    message = str(caught.value)
    assert "CustomerDocumentStore" in message and "'parlant_sessions_'" in message
    assert isinstance(caught.value.__cause__, ServerOutdated)
    assert rows_in_schema(supabase_db) == before


async def test_the_session_store_on_the_customer_prefix_is_told_too(
    supabase_db: SupabaseTestDatabase,
) -> None:
    def database() -> SupabaseDocumentDatabase:
        return SupabaseDocumentDatabase(
            logging.getLogger("t"), "parlant_customers_", supabase_db.settings
        )

    async with database() as db, CustomerDocumentStore(IdGenerator(), db):
        pass
    with pytest.raises(ConfigurationError, match="table_prefix='parlant_sessions_'") as caught:
        async with database() as db, SessionDocumentStore(db):
            pass
    assert isinstance(caught.value.__cause__, MigrationRequired)


async def test_a_genuine_version_problem_stays_parlants(
    supabase_db: SupabaseTestDatabase,
) -> None:
    supabase_db.execute_sql(
        "INSERT INTO parlant_sessions_metadata (id, version, creation_utc, data) VALUES "
        """('m', '99.0.0', '2026-01-01', '{"id": "m", "version": "99.0.0", "creation_utc": "2026-01-01"}')"""
    )
    with pytest.raises(ServerOutdated):
        async with (
            SupabaseDocumentDatabase(
                logging.getLogger("t"), "parlant_sessions_", supabase_db.settings
            ) as db,
            SessionDocumentStore(db),
        ):
            pass


async def test_a_vector_store_without_every_store_is_refused_before_any_request(
    settings: SupabaseSettings, supabase: LocalSupabase
) -> None:
    supabase.requests.clear()
    with pytest.raises(ConfigurationError, match="every_store=True") as caught:
        async with supabase_stores(settings, vector_store="supabase"):
            pass  # pragma: no cover
    assert "\n" not in str(caught.value) and len(supabase.requests) == 0
