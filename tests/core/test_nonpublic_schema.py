"""A schema other than public, end to end: `sql --schema parlant` from the console script,
applied to a stand-in exposing `parlant`, then Parlant's real stores through supabase_stores();
on a stand-in that does not expose it, one line with PostgREST's hint and what to change."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from parlant.core.agents import AgentId
from parlant.core.customers import CustomerId
from parlant.core.sessions import EventKind, EventSource
from parlant.core.tags import TagId

from parlant_supabase_sync import ddl
from parlant_supabase_sync.core import SyncDocumentDatabase
from parlant_supabase_sync.errors import PermissionDenied, SchemaNotExposed
from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.wiring import supabase_stores

SCHEMA = "parlant"


def console_script() -> list[str]:
    script = Path(sys.executable).parent / "parlant-supabase-sync"
    found = script if script.exists() else shutil.which("parlant-supabase-sync")
    return [str(found)] if found else [sys.executable, "-m", "parlant_supabase_sync"]


def generated_sql(*options: str) -> str:
    done = subprocess.run(
        [*console_script(), "sql", *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def exposed() -> Iterator[LocalSupabase]:
    """A stand-in exposing public and parlant, with `sql --schema parlant` applied."""
    with LocalSupabase(schemas=("public", SCHEMA)) as stack:
        assert stack.schemas == ("public", SCHEMA)
        stack.execute_sql(generated_sql("--schema", SCHEMA))
        # A collection of its own for the core-level checks below.
        stack.execute_sql(ddl.generate_schema({"pss_np_": ("docs",)}, schema=SCHEMA))
        yield stack


def settings_for(stack: LocalSupabase, **extra: Any) -> SupabaseSettings:
    return SupabaseSettings.from_env(stack.env(), **extra)


def count(stack: LocalSupabase, schema: str, table: str) -> int:
    return int(stack.query(f'SELECT count(*) FROM "{schema}"."{table}"')[0][0])


def test_parlant_stores_run_on_the_parlant_schema(exposed: LocalSupabase) -> None:
    async def scenario() -> None:
        async with supabase_stores(settings_for(exposed), schema=SCHEMA) as stores:
            assert {db.core.settings.db_schema for db in stores.databases} == {SCHEMA}
            session = await stores.sessions.create_session(CustomerId("c1"), AgentId("a1"))
            for i in range(3):
                await stores.sessions.create_event(
                    session_id=session.id,
                    source=EventSource.CUSTOMER,
                    kind=EventKind.MESSAGE,
                    trace_id="t",
                    data={"message": f"m{i}"},
                )
            customer = await stores.customers.create_customer("Ada", tags=[TagId("vip")])
            variable = await stores.variables.create_variable("plan")
            await stores.variables.update_value(variable.id, customer.id, {"tier": 2})
        # Reopened from SUPABASE_SCHEMA: the same documents.
        env_settings = SupabaseSettings.from_env({**exposed.env(), "SUPABASE_SCHEMA": SCHEMA})
        async with supabase_stores(env_settings) as again:
            events = await again.sessions.list_events(session.id)
            assert [e.offset for e in events] == [0, 1, 2]
            assert (await again.customers.read_customer(customer.id)).tags == [TagId("vip")]
            value = await again.variables.read_value(variable.id, customer.id)
            assert value is not None and value.data == {"tier": 2}

    anyio.run(scenario)
    assert count(exposed, SCHEMA, "parlant_sessions_events") == 3
    assert count(exposed, SCHEMA, "parlant_customers_") == 1
    assert count(exposed, SCHEMA, "parlant_sessions_metadata") == 1
    public_tables = exposed.query(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relname LIKE 'parlant%%'"
    )
    assert public_tables == [(0,)]


def test_failed_migrations_move_without_sequence_grants(exposed: LocalSupabase) -> None:
    # The failed table's identity key needs no grant on its sequence; the schema's USAGE and
    # the table grants are all service_role has.
    settings = settings_for(exposed, db_schema=SCHEMA)
    with SyncDocumentDatabase(settings, table_prefix="pss_np_") as db:
        docs = db.create_collection("docs", dict)  # no loader: the one below is the first
        docs.insert_one({"id": "d1", "version": "1", "creation_utc": "2026-01-01T00:00:00+00:00"})
        db.get_or_create_collection("docs", dict, lambda doc: None)
    assert count(exposed, SCHEMA, "pss_np_docs_failed_migrations") == 1
    assert count(exposed, SCHEMA, "pss_np_docs") == 0


def test_browser_roles_get_nothing_in_the_schema(exposed: LocalSupabase) -> None:
    usage = exposed.query(
        "SELECT r, has_schema_privilege(r, %s, 'USAGE') FROM unnest(%s::text[]) AS r",
        [SCHEMA, ["service_role", "anon", "authenticated"]],
    )
    assert dict(usage) == {"service_role": True, "anon": False, "authenticated": False}
    anon = settings_for(exposed, key=exposed.anon_key, db_schema=SCHEMA, allow_public_key=True)
    with (
        SyncDocumentDatabase(anon, table_prefix="parlant_sessions_") as db,
        pytest.raises(PermissionDenied),
    ):
        db.schema_report(["parlant_sessions_"])


def test_per_customer_mode_lets_authenticated_into_the_schema_only(exposed: LocalSupabase) -> None:
    sql = generated_sql("--schema", "parlant_pc", "--anon-policy", "per-customer")
    exposed.execute_sql(sql)
    usage = exposed.query(
        "SELECT r, has_schema_privilege(r, 'parlant_pc', 'USAGE') FROM unnest(%s::text[]) AS r",
        [["service_role", "anon", "authenticated"]],
    )
    assert dict(usage) == {"service_role": True, "anon": False, "authenticated": True}


def test_a_schema_the_api_does_not_expose_is_one_line_with_the_hint(
    local_supabase: LocalSupabase,
) -> None:
    # The session stand-in exposes public only.
    assert local_supabase.schemas == ("public",)

    async def start() -> None:
        async with supabase_stores(settings_for(local_supabase), schema=SCHEMA):
            pass

    with pytest.raises(SchemaNotExposed) as caught:
        anyio.run(start)
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.schema == SCHEMA and caught.value.code == "PGRST106"
    assert "Only the following schemas are exposed: public" in message
    assert "Project Settings → Data API → Exposed schemas" in message
    assert "SUPABASE_SCHEMA" in message


def test_the_core_names_the_unexposed_schema_too(local_supabase: LocalSupabase) -> None:
    settings = settings_for(local_supabase, db_schema=SCHEMA)
    with (
        SyncDocumentDatabase(settings, table_prefix="pss_np_", logger=logging.getLogger("t")) as db,
        pytest.raises(SchemaNotExposed, match="Exposed schemas"),
    ):
        db.get_or_create_collection("docs", dict, lambda doc: doc)
