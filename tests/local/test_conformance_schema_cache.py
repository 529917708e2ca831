"""Schema cache, exposed schemas and cluster locale, as hosted Supabase and PostgREST behave.

Sources: PostgREST `src/library/PostgREST/AppState/Reload.hs` (listener: `reload schema` or an
empty payload reloads, anything else is ignored; a lost listener reconnects and reloads),
`SchemaCache.hs` (partitions are not tables), `Error.hs` (PGRST205, PGRST106); Supabase's
event triggers `pgrst_ddl_watch`/`pgrst_drop_watch` (supabase/postgres
`migrations/db/migrations/20220126121436_finer-postgrest-triggers.sql`,
`20220321174452_fix-postgrest-alter-type-event-trigger.sql`); hosted `lc_collate = C.UTF-8`
(supabase/postgres#696, supabase/cli#1309).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pgrst_helpers import Rest, assert_error, ok_json

from parlant_supabase_sync.local.stack import LocalSupabase


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def raw_sql(stack: LocalSupabase, sql: str) -> None:
    """DDL through a connection of our own: no waiting for the schema cache."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(sql.encode())


def status_code(rest: Rest, path: str) -> tuple[int, Any]:
    resp = rest.get(path)
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, resp.text


@pytest.fixture(scope="module")
def plain() -> Iterator[LocalSupabase]:
    """Plain PostgREST: no DDL event triggers; two exposed schemas; an ICU en-US collation."""
    with LocalSupabase(ddl_watch=False, schemas=("public", "parlant"), locale="icu:en-US") as stack:
        yield stack


@pytest.fixture(scope="module")
def plain_rest(plain: LocalSupabase) -> Iterator[Rest]:
    client = Rest(plain.url, plain.service_role_key)
    yield client
    client.close()


@pytest.fixture(scope="module")
def rest(local_supabase: LocalSupabase) -> Iterator[Rest]:
    client = Rest(local_supabase.url, local_supabase.service_role_key)
    yield client
    client.close()


# --- Supabase's event triggers ------------------------------------------------------------------


def test_the_stand_in_installs_supabases_ddl_watch_event_triggers(local_supabase: LocalSupabase) -> None:
    rows = local_supabase.query(
        "select e.evtname, e.evtevent, e.evtenabled, n.nspname, p.proname from pg_event_trigger e"
        " join pg_proc p on p.oid = e.evtfoid join pg_namespace n on n.oid = p.pronamespace"
        " where e.evtname like 'pgrst%' order by 1"
    )
    assert rows == [
        ("pgrst_ddl_watch", "ddl_command_end", "O", "extensions", "pgrst_ddl_watch"),
        ("pgrst_drop_watch", "sql_drop", "O", "extensions", "pgrst_drop_watch"),
    ]


def test_ddl_watch_false_removes_them(plain: LocalSupabase) -> None:
    assert plain.query("select evtname from pg_event_trigger where evtname like 'pgrst%'") == []


def test_execute_sql_returns_once_a_new_table_is_served(local_supabase: LocalSupabase, rest: Rest) -> None:
    table = unique("sc_exec")
    before = local_supabase.schema_reload_count
    local_supabase.execute_sql(f"create table {table} (id int primary key); grant all on {table} to service_role")
    assert local_supabase.schema_reload_count > before
    assert ok_json(rest.get(f"/{table}")) == []


def test_ddl_from_another_connection_reloads_asynchronously(local_supabase: LocalSupabase, rest: Rest) -> None:
    table = unique("sc_async")
    before = local_supabase.schema_reload_count
    raw_sql(local_supabase, f"create table {table} (id int primary key); grant all on {table} to service_role")
    local_supabase.wait_schema_reload()
    assert local_supabase.schema_reload_count > before
    assert ok_json(rest.get(f"/{table}")) == []
    raw_sql(local_supabase, f"alter table {table} add column label text")
    local_supabase.wait_schema_reload()
    assert ok_json(rest.post(f"/{table}", json_body={"id": 1, "label": "x"}, prefer="return=representation"), 201) == [
        {"id": 1, "label": "x"}
    ]
    raw_sql(local_supabase, f"drop table {table}")
    local_supabase.wait_schema_reload()
    assert_error(rest.get(f"/{table}"), 404, "PGRST205",
                 message=f"Could not find the table 'public.{table}' in the schema cache")


@pytest.mark.parametrize("statement", [
    "grant select on {table} to anon",
    "create index on {table} (id)",
    "create temp table {table}_tmp (id int)",
    "insert into {table} values (1)",
])
def test_statements_outside_supabases_lists_do_not_reload(local_supabase: LocalSupabase, statement: str) -> None:
    table = unique("sc_quiet")
    local_supabase.execute_sql(f"create table {table} (id int)")
    before = local_supabase.schema_reload_count
    local_supabase.execute_sql(statement.format(table=table))
    local_supabase.wait_schema_reload()
    assert local_supabase.schema_reload_count == before


def test_comment_and_create_function_reload(local_supabase: LocalSupabase, rest: Rest) -> None:
    fn = unique("sc_fn")
    before = local_supabase.schema_reload_count
    raw_sql(local_supabase, f"create function {fn}() returns int language sql as 'select 7'")
    local_supabase.wait_schema_reload()
    assert local_supabase.schema_reload_count == before + 1
    assert ok_json(rest.post(f"/rpc/{fn}", json_body={})) == 7
    raw_sql(local_supabase, f"comment on function {fn}() is 'seven'")
    local_supabase.wait_schema_reload()
    assert local_supabase.schema_reload_count == before + 2


# --- plain PostgREST: only NOTIFY reloads --------------------------------------------------------


def test_a_new_table_is_pgrst205_until_a_reload_is_notified(plain: LocalSupabase, plain_rest: Rest) -> None:
    table = unique("sc_plain")
    plain.execute_sql(f"create table {table} (id int primary key); grant all on {table} to service_role")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # nothing reloads by itself, however long we wait
        assert_error(plain_rest.get(f"/{table}"), 404, "PGRST205",
                     message=f"Could not find the table 'public.{table}' in the schema cache")
        time.sleep(0.1)
    before = plain.schema_reload_count
    plain.execute_sql("notify pgrst, 'reload schema'")  # execute_sql waits for this reload
    assert plain.schema_reload_count == before + 1
    assert ok_json(plain_rest.get(f"/{table}")) == []


def test_new_columns_and_functions_wait_for_a_reload_too(plain: LocalSupabase, plain_rest: Rest) -> None:
    table, fn = unique("sc_cols"), unique("sc_plain_fn")
    plain.execute_sql(f"create table {table} (id int primary key); grant all on {table} to service_role;"
                      "notify pgrst, 'reload schema'")
    plain.execute_sql(f"alter table {table} add column label text;"
                      f"create function {fn}() returns int language sql as 'select 1'")
    assert_error(plain_rest.post(f"/{table}", json_body={"id": 1, "label": "x"}), 400, "PGRST204",
                 message=f"Could not find the 'label' column of '{table}' in the schema cache")
    assert_error(plain_rest.post(f"/rpc/{fn}", json_body={}), 404, "PGRST202")
    plain.execute_sql("notify pgrst")  # an empty payload reloads as well
    assert ok_json(plain_rest.post(f"/{table}", json_body={"id": 1, "label": "x"}, prefer="return=representation"), 201)
    assert ok_json(plain_rest.post(f"/rpc/{fn}", json_body={})) == 1


@pytest.mark.parametrize("payload", ["reload config", "reload", "Reload Schema", "reload schema "])
def test_other_payloads_do_not_reload(plain: LocalSupabase, payload: str) -> None:
    before = plain.schema_reload_count
    plain.execute_sql(f"notify pgrst, '{payload}'")
    plain.wait_schema_reload()
    assert plain.schema_reload_count == before


def test_a_dropped_table_still_in_the_cache_fails_in_postgresql(plain: LocalSupabase, plain_rest: Rest) -> None:
    table = unique("sc_gone")
    plain.execute_sql(f"create table {table} (id int); grant all on {table} to service_role;"
                      "notify pgrst, 'reload schema'")
    plain.execute_sql(f"drop table {table}")
    resp = plain_rest.get(f"/{table}")
    assert_error(resp, 404, "42P01", message_contains=f'relation "public.{table}" does not exist')
    plain.execute_sql("notify pgrst, 'reload schema'")
    assert_error(plain_rest.get(f"/{table}"), 404, "PGRST205")


def test_partitions_are_not_exposed_as_tables(plain: LocalSupabase, plain_rest: Rest) -> None:
    parent = unique("sc_part")
    plain.execute_sql(
        f"create table {parent} (id int) partition by range (id);"
        f"create table {parent}_p1 partition of {parent} for values from (0) to (100);"
        f"grant all on {parent}, {parent}_p1 to service_role; notify pgrst, 'reload schema'"
    )
    assert ok_json(plain_rest.get(f"/{parent}")) == []
    assert_error(plain_rest.get(f"/{parent}_p1"), 404, "PGRST205")


def test_a_lost_listener_reconnects_and_reloads(plain: LocalSupabase, plain_rest: Rest) -> None:
    table = unique("sc_relisten")
    plain.execute_sql(f"create table {table} (id int); grant all on {table} to service_role")
    before = plain.schema_reload_count
    killed = plain.query(
        "select pg_terminate_backend(pid) from pg_stat_activity"
        " where application_name = 'parlant-supabase-listener'"
    )
    assert killed == [(True,)]
    # A barrier sent while the listener is away is settled by the reload after it reconnects.
    plain.wait_schema_reload(timeout=15)
    deadline = time.monotonic() + 15
    while plain.schema_reload_count == before:
        assert time.monotonic() < deadline, "the listener did not reconnect"
        time.sleep(0.1)
    assert ok_json(plain_rest.get(f"/{table}")) == []
    plain.execute_sql("notify pgrst, 'reload schema'")  # and it listens again
    assert plain.schema_reload_count >= before + 2


# --- exposed schemas ------------------------------------------------------------------------------


def test_an_exposed_schema_is_served_by_profile(plain: LocalSupabase, plain_rest: Rest) -> None:
    plain.execute_sql(
        "grant usage on schema parlant to anon, authenticated, service_role;"
        "create table if not exists parlant.items (id int primary key, name text);"
        "grant all on parlant.items to service_role; notify pgrst, 'reload schema'"
    )
    resp = plain_rest.post("/items", json_body={"id": 1, "name": "x"}, headers={"Content-Profile": "parlant"},
                           prefer="return=representation")
    assert ok_json(resp, 201) == [{"id": 1, "name": "x"}]
    assert resp.headers["content-profile"] == "parlant"
    resp = plain_rest.get("/items", headers={"Accept-Profile": "parlant"})
    assert ok_json(resp) == [{"id": 1, "name": "x"}]
    assert resp.headers["content-profile"] == "parlant"
    # The first schema is the default, and with two exposed schemas every answer names it.
    resp = plain_rest.get("/items")
    assert_error(resp, 404, "PGRST205", message="Could not find the table 'public.items' in the schema cache")


@pytest.mark.parametrize(("method", "header"), [("GET", "Accept-Profile"), ("POST", "Content-Profile"),
                                                ("PATCH", "Content-Profile"), ("DELETE", "Content-Profile")])
def test_a_schema_that_is_not_exposed_is_pgrst106(plain_rest: Rest, method: str, header: str) -> None:
    resp = plain_rest.request(method, "/items", "id=eq.1", headers={header: "auth"},
                              json_body={} if method in ("POST", "PATCH") else None)
    assert_error(resp, 406, "PGRST106", message="Invalid schema: auth", details=None,
                 hint="Only the following schemas are exposed: public, parlant")


def test_with_only_public_exposed_any_other_profile_is_pgrst106(rest: Rest) -> None:
    assert_error(rest.get("/anything", headers={"Accept-Profile": "parlant"}), 406, "PGRST106",
                 message="Invalid schema: parlant", hint="Only the following schemas are exposed: public")


def test_exposed_schemas_other_than_public_are_created_without_grants() -> None:
    stack = LocalSupabase(schemas=("public", "extra_exposed"))
    with stack:
        rows = stack.query("select has_schema_privilege('anon', 'extra_exposed', 'usage')")
    assert rows == [(False,)]


# --- cluster locale through the API ---------------------------------------------------------------


@pytest.mark.parametrize(("stack_name", "expected"), [("local_supabase", ["B", "a", "c"]),
                                                      ("plain", ["a", "B", "c"])])
def test_ordering_follows_the_cluster_collation(request: pytest.FixtureRequest, stack_name: str,
                                                expected: list[str]) -> None:
    stack: LocalSupabase = request.getfixturevalue(stack_name)
    table = unique("sc_order")
    stack.execute_sql(f"create table {table} (id int primary key, name text);"
                      f"grant all on {table} to service_role;"
                      f"insert into {table} values (1, 'a'), (2, 'B'), (3, 'c');"
                      "notify pgrst, 'reload schema'")
    client = Rest(stack.url, stack.service_role_key)
    try:
        rows = ok_json(client.get(f"/{table}", "select=name&order=name"))
    finally:
        client.close()
    assert [r["name"] for r in rows] == expected
