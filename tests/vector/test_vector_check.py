"""`check` with the vector stores: their tables and functions in the same one request, the
command that creates them, their exposure, through the library and the console script."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from parlant_supabase_sync import ddl
from parlant_supabase_sync.api import connect
from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.vector_ddl import (
    VECTOR_FUNCTION_NAMES,
    parlant_vector_schema_sql,
    parlant_vector_tables,
)


def drop_vector_tables(stack: LocalSupabase) -> None:
    stack.execute_sql(
        "".join(f'DROP TABLE IF EXISTS public."{t}";\n' for t in parlant_vector_tables())
        + "NOTIFY pgrst, 'reload schema';"
    )


@pytest.fixture
def documents_only(vector_stack: LocalSupabase) -> Iterator[LocalSupabase]:
    """Every document store's tables, none of the (default-prefix) vector stores' tables."""
    vector_stack.execute_sql(ddl.generate_schema(ddl.every_store(), include_functions=True))
    drop_vector_tables(vector_stack)
    yield vector_stack
    drop_vector_tables(vector_stack)


def test_check_names_the_missing_vector_tables_and_the_sql_to_run(
    documents_only: LocalSupabase,
) -> None:
    stack = documents_only
    with connect(stack.url, stack.secret_key) as conn:
        assert conn.check(["all"]).ok  # vectors in memory (the default): not checked
        with stack.requests.capture() as sent:
            report = conn.check(["all"], vectors=True)
        assert len(sent.entries()) == 1  # the same one schema report
        assert not report.ok and report.missing_vector_tables == parlant_vector_tables()
        # The functions are there if another test made them (shared by every vector prefix).
        assert set(report.missing_vector_functions) <= set(VECTOR_FUNCTION_NAMES)
        assert all(f in report.next_step for f in report.missing_vector_functions)
        assert "sql --vectors DIMS > vectors.sql" in report.next_step
        assert 'psql "$DATABASE_URL" -f vectors.sql' in report.next_step
        assert "\n" not in report.next_step

        stack.execute_sql(parlant_vector_schema_sql(64))
        report = conn.check(["all"], vectors=True)
        assert report.ok, report.next_step
        assert set(parlant_vector_tables()) <= set(report.tables)
        assert all(report.functions[f] for f in VECTOR_FUNCTION_NAMES)

        table = parlant_vector_tables()[1]
        stack.execute_sql(f'GRANT SELECT ON public."{table}" TO anon;')
        exposed = conn.check(["all"], vectors=True)
        assert not exposed.ok and table in exposed.exposed, exposed.next_step


def test_check_vectors_through_the_console_script(documents_only: LocalSupabase) -> None:
    script = Path(sys.executable).parent / "parlant-supabase-sync"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "parlant_supabase_sync"]
    env = {**os.environ, **documents_only.env(), "PARLANT_SUPABASE_VECTOR_STORE": "supabase"}
    done = subprocess.run(
        [*command, "check", "--prefix", "all", "--table"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "parlant_glossary_vectors_glossary" in done.stdout and "MISSING" in done.stdout
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and "--vectors DIMS" in error[0], done.stderr
    quiet = subprocess.run(
        [*command, "check", "--prefix", "all", "--no-vectors"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr


@pytest.mark.anyio
async def test_supabase_stores_with_vectors_on_supabase_report_missing_vector_tables_first(
    documents_only: LocalSupabase,
) -> None:
    from parlant_supabase_sync.errors import SchemaMissing
    from parlant_supabase_sync.settings import SupabaseSettings
    from parlant_supabase_sync.wiring import supabase_stores

    stack = documents_only
    settings = SupabaseSettings(url=stack.url, key=stack.secret_key, vector_store="supabase")
    with stack.requests.capture() as sent, pytest.raises(SchemaMissing) as caught:
        async with supabase_stores(settings, every_store=True):
            pass  # pragma: no cover
    message = str(caught.value)
    assert "vector store: parlant_glossary_vectors_metadata" in message
    assert "sql --prefix all --vectors DIMS > schema.sql" in message and "\n" not in message
    assert not [
        e for e in sent.entries() if e.method != "GET" and "/rpc/parlant_schema" not in e.path
    ]
