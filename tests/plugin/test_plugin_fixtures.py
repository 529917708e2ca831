"""The pytest plugin used as a user would: `supabase_db`, `factories`, isolation, load steps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from parlant_supabase_sync.errors import ConfigurationError, DuplicateDocument
from parlant_supabase_sync.local.pytest_plugin import (
    SupabaseTestDatabase,
    factories,
    open_test_database,
)
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.wiring import supabase_stores

if TYPE_CHECKING:
    from parlant_supabase_sync.local import LocalSupabase

DOC = {"id": "d1", "version": "0.1.0", "creation_utc": "2026-01-01T00:00:00Z", "n": 1}
SEED_SQL = """-- A load step from a file: unqualified names land in the test's schema.
INSERT INTO acme_docs (id, creation_utc, version, data)
VALUES ('t2', '2027', '0.1', '{"id": "t2", "creation_utc": "2027", "version": "0.1"}');
"""


def _tables_in(stand_in: LocalSupabase, schema: str) -> list[str]:
    rows = stand_in.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", [schema]
    )
    return [str(row[0]) for row in rows]


# --- the default per-test database -----------------------------------------------------------

_SEEN: dict[str, Any] = {}


def test_supabase_db_has_the_default_stores_in_a_schema_of_its_own(
    supabase_db: SupabaseTestDatabase,
) -> None:
    assert supabase_db.isolation == "schema"
    assert supabase_db.schema.startswith("pss_test_")
    assert supabase_db.key_kind == "secret" and supabase_db.key.startswith("sb_secret_")
    assert set(supabase_db.prefixes) == {"sessions", "customers", "context_variables"}
    with supabase_db.connect() as db:
        report = db.check()
        assert report.ok, report.as_dict()
        events = db.store("sessions").collection("events")
        events.insert({**DOC, "session_id": "s1"})
        assert events.count({"session_id": {"$eq": "s1"}}) == 1
    assert supabase_db.table("sessions", "events") == "parlant_sessions_events"
    _SEEN["first"] = supabase_db.schema


def test_the_next_test_sees_none_of_the_previous_tests_documents(
    supabase_db: SupabaseTestDatabase, supabase_proc: LocalSupabase
) -> None:
    # Runs after the test above (file order): another schema, and the old one is empty again.
    assert supabase_db.schema != _SEEN["first"]
    assert _tables_in(supabase_proc, _SEEN["first"]) == []
    events = supabase_db.database("sessions").get_or_create_collection("events", dict, lambda d: d)
    assert events.count({}) == 0
    events.insert_one({**DOC, "session_id": "s1"})  # the same id again: no DuplicateDocument


def test_sync_database_and_env(supabase_db_env: dict[str, str], supabase_db: SupabaseTestDatabase) -> None:
    from parlant_supabase_sync import connect

    assert supabase_db_env["SUPABASE_SCHEMA"] == supabase_db.schema
    with connect() as db:  # everything from the environment the fixture exported
        customers = db.store("customers").collection("customers")
        customers.insert(DOC)
        with pytest.raises(DuplicateDocument):
            customers.insert(DOC)
    database = supabase_db.database("customers")
    assert database.table_prefix == "parlant_customers_"
    found = database.get_collection("customers", dict, lambda d: d).find({"id": {"$eq": "d1"}})
    assert found.items == [DOC]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_parlant_stores_on_the_test_schema(supabase_db: SupabaseTestDatabase) -> None:
    from parlant.core.agents import AgentId
    from parlant.core.customers import CustomerId

    async with supabase_stores(supabase_db.settings, allow_migration=False) as stores:
        session = await stores.sessions.create_session(CustomerId("c1"), AgentId("a1"))
        assert [s.id for s in (await stores.sessions.list_sessions()).items] == [session.id]
    rows = supabase_db.query(
        f"SELECT id FROM {supabase_db.qualified('sessions', 'sessions')}"
    )
    assert rows == [(session.id,)]


def test_teardown_drops_the_tables_and_frees_the_schema(supabase_proc: LocalSupabase) -> None:
    with open_test_database(supabase_proc, stores=["sessions"]) as db:
        schema = db.schema
        assert "parlant_sessions_events" in _tables_in(supabase_proc, schema)
        connection = db.connect()
    assert _tables_in(supabase_proc, schema) == []
    assert connection.transport.http.is_closed  # clients handed out are closed too


def test_a_failing_load_step_still_cleans_up(supabase_proc: LocalSupabase) -> None:
    seen: list[str] = []

    def remember(db: SupabaseTestDatabase) -> None:
        seen.append(db.schema)

    with pytest.raises(Exception, match="no_such_table"), open_test_database(
        supabase_proc, stores=["sessions"], load=[remember, "SELECT * FROM no_such_table"]
    ):
        pass  # pragma: no cover (the load step fails first)
    assert _tables_in(supabase_proc, seen[0]) == []


# --- load=[...] -----------------------------------------------------------------------------

acme_db = factories.supabase_db(
    stores={"acme_": ("docs", "metadata")},
    load=[
        # SQL text runs with search_path = the test schema, so names need no schema.
        (
            "INSERT INTO acme_docs (id, creation_utc, version, data) VALUES "
            """('t1', '2026', '0.1', '{"id": "t1", "creation_utc": "2026", "version": "0.1"}')"""
        ),
        lambda db: db.connect().store("acme_").collection("docs").insert(
            {"id": "t3", "creation_utc": "2028", "version": "0.1"}
        ),
    ],
)


def test_load_steps_run_in_order_in_the_test_schema(acme_db: SupabaseTestDatabase) -> None:
    assert acme_db.prefix == "acme_"
    with acme_db.connect() as db:
        docs = db.store("acme_").collection("docs")
        assert [d["id"] for d in docs] == ["t1", "t3"]
    assert "acme_docs" in _tables_in(acme_db.stand_in, acme_db.schema)


def test_a_sql_file_load_step(supabase_proc: LocalSupabase, tmp_path: Path) -> None:
    seed = tmp_path / "seed.sql"
    seed.write_text(SEED_SQL, encoding="utf-8")
    with open_test_database(
        supabase_proc, stores={"acme_": ("docs", "metadata")}, load=[seed]
    ) as db, db.connect() as connection:
        assert [d["id"] for d in connection.store("acme_").collection("docs")] == ["t2"]


# --- prefix isolation on the plain `local_supabase` ----------------------------------------

prefixed_db = factories.supabase_db("local_supabase", stores={"acme_": ("docs", "metadata")})


def test_prefix_isolation_on_local_supabase(
    prefixed_db: SupabaseTestDatabase, local_supabase: LocalSupabase
) -> None:
    assert prefixed_db.isolation == "prefix" and prefixed_db.schema == "public"
    prefix = prefixed_db.prefixes["acme_"]
    assert prefix.startswith("t") and prefix.endswith("_acme_") and prefix != "acme_"
    with prefixed_db.connect() as db:
        db.store(prefix).collection("docs").insert(DOC)
        assert db.store(prefix).collection("docs").count() == 1
    _SEEN["prefix"] = prefixed_db.table("acme_", "docs")
    assert _SEEN["prefix"] in _tables_in(local_supabase, "public")


def test_prefix_isolation_dropped_the_previous_tables(
    prefixed_db: SupabaseTestDatabase, local_supabase: LocalSupabase
) -> None:
    assert prefixed_db.table("acme_", "docs") != _SEEN["prefix"]
    assert _SEEN["prefix"] not in _tables_in(local_supabase, "public")


def test_default_stores_cannot_be_prefix_isolated(local_supabase: LocalSupabase) -> None:
    with pytest.raises(RuntimeError, match="fixed table prefixes"), open_test_database(
        local_supabase, stores=["sessions"]
    ):
        pass  # pragma: no cover
    with pytest.raises(RuntimeError, match="spare schemas"), open_test_database(
        local_supabase, stores={"acme_": ("docs",)}, isolation="schema"
    ):
        pass  # pragma: no cover


# --- factories: stand-in options and key kinds ----------------------------------------------

capped_proc = factories.supabase_proc(max_rows=3, test_schemas=2, scope="module")
capped_db = factories.supabase_db("capped_proc", stores={"acme_": ("docs", "metadata")})
legacy_db = factories.supabase_db(
    "capped_proc", stores={"acme_": ("docs", "metadata")}, key="service_role"
)
anon_db = factories.supabase_db(
    "capped_proc", stores={"acme_": ("docs", "metadata")}, key="anon"
)
open_db = factories.supabase_db(
    "capped_proc",
    stores={"acme_": ("docs", "metadata")},
    key="publishable",
    anon_policy="allow-all",
)


def _docs(count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"d{i:02}", "version": "0.1", "creation_utc": f"2026-01-{i + 1:02}"}
        for i in range(count)
    ]


def test_max_rows_option_caps_raw_reads_but_not_the_adapter(capped_db: SupabaseTestDatabase) -> None:
    with capped_db.connect() as db:
        docs = db.store("acme_").collection("docs")
        docs.insert_many(_docs(7))
        assert len(list(docs)) == 7  # the adapter pages past the server's cap
    database = capped_db.database()
    table = capped_db.table("acme_", "docs")
    raw = database.transport.table(table).select("id")
    answer = database.transport.send("probe", raw, table=table)
    assert len(answer.data) == 3


def test_legacy_service_role_key(legacy_db: SupabaseTestDatabase) -> None:
    assert legacy_db.key_kind == "service_role" and legacy_db.key.count(".") == 2
    with legacy_db.connect() as db:
        db.store("acme_").collection("docs").insert(DOC)
        assert db.store("acme_").collection("docs").count() == 1


def _rest_get(db: SupabaseTestDatabase, table: str) -> httpx.Response:
    # Straight to the gateway: the library refuses public keys (see below).
    return httpx.get(
        f"{db.url}/rest/v1/{table}",
        params={"select": "id"},
        headers={"apikey": db.key, "Accept-Profile": db.schema},
    )


def _insert_raw(db: SupabaseTestDatabase) -> None:
    db.execute_sql(
        "INSERT INTO acme_docs (id, creation_utc, version, data) "
        """VALUES ('d1', '2026', '0.1', '{"id": "d1", "creation_utc": "2026", "version": "0.1"}')"""
    )


def test_anon_key_sees_nothing_under_the_generated_sql(anon_db: SupabaseTestDatabase) -> None:
    assert anon_db.key_kind == "anon" and anon_db.key == anon_db.stand_in.anon_key
    _insert_raw(anon_db)
    answer = _rest_get(anon_db, "acme_docs")
    assert answer.status_code in (401, 403), answer.text  # no grant for anon at all
    if "allow_public_key" not in SupabaseSettings.model_fields:
        with pytest.raises(ConfigurationError, match="public key"):
            anon_db.connect()


def test_publishable_key_with_an_allow_all_policy(open_db: SupabaseTestDatabase) -> None:
    assert open_db.key.startswith("sb_publishable_")
    _insert_raw(open_db)
    answer = _rest_get(open_db, "acme_docs")
    assert answer.status_code == 200 and answer.json() == [{"id": "d1"}]


def test_factory_arguments_are_checked_early() -> None:
    with pytest.raises(ValueError, match="key must be one of"):
        factories.supabase_db(key="root")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="test_schemas"):
        factories.supabase_proc(test_schemas=-1)


def test_bad_options_leave_every_spare_schema_free(supabase_proc: LocalSupabase) -> None:
    from parlant_supabase_sync.local.pytest_plugin import _POOLS

    free = len(_POOLS[supabase_proc]._free)
    with pytest.raises(ValueError), open_test_database(supabase_proc, settings={"page_size": 0}):
        pass  # pragma: no cover
    with pytest.raises(ValueError), open_test_database(supabase_proc, anon_policy="bogus"):
        pass  # pragma: no cover
    assert len(_POOLS[supabase_proc]._free) == free
