"""Attacks with every credential a browser can hold, against every adapter table and function.

For each anon-policy mode (and after an upgrade from the older adapter's SQL) the anon key, the
publishable key, two signed-in customers and a request without a key try to read, count,
insert, update, delete and upsert rows of one store's tables and the receipts table, over raw
HTTP, and to call the adapter's RPC functions. Reads may answer 200 with [] (RLS hides rows:
no data leaked); writes are checked against the database itself. Only what the mode documents
may work: per-customer lets a customer read exactly their own rows of the sessions table;
allow-all leaves the document tables open (its warning says so), never the receipts or the
functions. A seed-only database is the control: there the same harness must find the leaks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from security_helpers import (
    ATTACKED_TABLES,
    CUSTOMER_TABLE,
    MODES,
    STORE_TABLES,
    Attacker,
    attackers,
    changed_row,
    install,
    key_column,
    new_row,
    row_ids,
    table_state,
)

from parlant_supabase_sync.ddl_functions import FUNCTION_NAMES, RECEIPTS_TABLE

if TYPE_CHECKING:
    from parlant_supabase_sync.local.stack import LocalSupabase

ATTACKER_NAMES = ("anon key", "publishable key", "customer A", "customer B", "no key")
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


@pytest.fixture(scope="module", params=MODES)
def mode(request: pytest.FixtureRequest, security_stack: LocalSupabase) -> Iterator[str]:
    install(security_stack, request.param)
    yield request.param


def _attacker(stack: LocalSupabase, name: str) -> Attacker:
    return next(a for a in attackers(stack) if a.name == name)


def _open_by_design(mode: str, attacker: Attacker, table: str) -> bool:
    """allow-all: anyone with a key may do anything to the document tables (documented)."""
    return mode == "allow-all" and bool(attacker.headers) and table in STORE_TABLES


def _visible(mode: str, attacker: Attacker, table: str) -> set[str] | None:
    """The row ids `attacker` may read from `table` (None: any, the table is open)."""
    if _open_by_design(mode, attacker, table):
        return None
    if mode == "per-customer" and attacker.customer is not None and table == CUSTOMER_TABLE:
        return {"a1", "a2"} if attacker.customer.endswith("a") else {"b1"}
    return set()


def _writes(table: str, marker: str) -> list[tuple[str, str, dict[str, Any]]]:
    key = key_column(table)
    first = row_ids(table)[0]
    upsert = {**new_row(table, marker), key: first, **changed_row(table)}
    return [
        ("insert", "POST", {"json": new_row(table, marker)}),
        ("update", "PATCH", {"params": {key: f"eq.{first}"}, "json": changed_row(table)}),
        ("update all", "PATCH", {"params": {key: "not.is.null"}, "json": changed_row(table)}),
        ("delete", "DELETE", {"params": {key: f"eq.{first}"}}),
        ("delete all", "DELETE", {"params": {key: "not.is.null"}}),
        (
            "upsert",
            "POST",
            {"json": upsert, "headers": {"Prefer": "resolution=merge-duplicates"}},
        ),
    ]


def _rpc_calls() -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    for operation, args in (
        ("insert", {"document": {"id": "evil-rpc", "customer_id": "x"}}),
        ("clear", {}),
        ("delete", {"id": "a1"}),
    ):
        for table in (CUSTOMER_TABLE, RECEIPTS_TABLE):
            calls.append(("parlant_write", {
                "p_request_id": uuid.uuid4().hex, "p_table": table,
                "p_operation": operation, "p_args": args,
            }))  # fmt: skip
    calls.append(("parlant_schema_report", {"p_tables": list(ATTACKED_TABLES)}))
    if "parlant_find" in FUNCTION_NAMES:
        calls.append(("parlant_find", {"p_table": CUSTOMER_TABLE}))
    return calls


@pytest.mark.parametrize("attacker_name", ATTACKER_NAMES)
def test_no_credential_but_the_secret_key_gets_in(
    mode: str, attacker_name: str, security_stack: LocalSupabase
) -> None:
    stack = security_stack
    attacker = _attacker(stack, attacker_name)
    failures: list[str] = []
    state = table_state(stack)
    with httpx.Client(base_url=f"{stack.url}/rest/v1", headers=dict(attacker.headers)) as http:
        for table in ATTACKED_TABLES:
            visible = _visible(mode, attacker, table)
            key = key_column(table)
            # read
            answer = http.get(f"/{table}", params={"select": "*"})
            if answer.is_success:
                seen = {row[key] for row in answer.json()}
                if visible is not None and seen != visible:
                    failures.append(f"read {table}: {answer.status_code} saw {sorted(seen)}")
            elif visible:
                failures.append(f"read {table}: {answer.status_code}, expected own rows")
            # count
            answer = http.head(f"/{table}", params={"select": key}, headers={"Prefer": "count=exact"})
            if answer.is_success:
                total = int(answer.headers.get("content-range", "*/0").split("/")[-1])
                if visible is not None and total != len(visible):
                    failures.append(f"count {table}: {answer.status_code} counted {total}")
            # writes, each checked in the database
            for name, method, kwargs in _writes(table, uuid.uuid4().hex[:8]):
                answer = http.request(method, f"/{table}", **kwargs)
                after = table_state(stack)
                if after != state and not _open_by_design(mode, attacker, table):
                    failures.append(f"{name} {table}: {answer.status_code} changed the table")
                state = after
        for function, body in _rpc_calls():
            answer = http.post(f"/rpc/{function}", json=body)
            if answer.is_success:
                failures.append(f"rpc {function}: {answer.status_code} {answer.text[:120]}")
            after = table_state(stack)
            if after != state:
                failures.append(f"rpc {function} changed the database")
            state = after
    assert not failures, f"{attacker.name} in mode {mode}:\n" + "\n".join(failures)


def test_browser_roles_hold_no_privilege_beyond_the_mode(
    mode: str, security_stack: LocalSupabase
) -> None:
    """What REST cannot exercise (TRUNCATE, TRIGGER, REFERENCES, column grants): the catalog."""
    held = security_stack.query(
        """SELECT g.role, c.relname::text, p.privilege
             FROM unnest(ARRAY['anon', 'authenticated', 'public']) AS g(role)
            CROSS JOIN pg_class AS c
            CROSS JOIN unnest(%s::text[]) AS p(privilege)
            WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY (%s)
              AND CASE WHEN p.privilege IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
                       THEN has_any_column_privilege(g.role, c.oid, p.privilege)
                       ELSE has_table_privilege(g.role, c.oid, p.privilege) END
            ORDER BY 1, 2, 3""",
        (list(PRIVILEGES), list(ATTACKED_TABLES)),
    )
    if mode == "allow-all":
        expected = {
            (role, table, privilege)
            for role in ("anon", "authenticated")
            for table in STORE_TABLES
            for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")
        }
    elif mode == "per-customer":
        expected = {("authenticated", CUSTOMER_TABLE, "SELECT")}
    else:
        expected = set()
    assert set(held) == expected
    rls_off = security_stack.query(
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relkind = 'r' AND NOT relrowsecurity"
    )
    assert rls_off == []


def test_no_adapter_function_is_executable_by_a_browser_role(
    mode: str, security_stack: LocalSupabase
) -> None:
    rows = security_stack.query(
        """SELECT p.proname::text, g.role,
                  has_function_privilege(g.role, p.oid, 'EXECUTE'),
                  p.proconfig, p.prosecdef
             FROM pg_proc AS p
            CROSS JOIN unnest(ARRAY['anon', 'authenticated', 'public', 'service_role']) AS g(role)
            WHERE p.pronamespace = 'public'::regnamespace
            ORDER BY 1, 2"""
    )
    names = {row[0] for row in rows}
    assert set(FUNCTION_NAMES) <= names
    assert "parlant_merge_document" not in names
    for name, role, executable, config, definer in rows:
        assert executable is (role == "service_role"), (name, role)
        # Supabase Security Advisor lint 0011: search_path pinned; and never SECURITY DEFINER.
        assert config == ['search_path=""'], (name, config)
        assert definer is False, name


def test_the_harness_finds_the_leaks_of_the_older_adapters_sql(
    security_stack: LocalSupabase,
) -> None:
    """Control: on the seed's SQL alone, the anon key reads every row and writes."""
    install(security_stack, "seed")
    try:
        anon = _attacker(security_stack, "anon key")
        with httpx.Client(base_url=f"{security_stack.url}/rest/v1", headers=dict(anon.headers)) as http:
            rows = http.get(f"/{CUSTOMER_TABLE}", params={"select": "id"})
            assert rows.status_code == 200 and {r["id"] for r in rows.json()} == {"a1", "a2", "b1"}
            before = table_state(security_stack)
            inserted = http.post(f"/{CUSTOMER_TABLE}", json=new_row(CUSTOMER_TABLE, "control"))
            assert inserted.is_success
            assert table_state(security_stack) != before
    finally:
        install(security_stack, "none")
