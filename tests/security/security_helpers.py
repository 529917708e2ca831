"""Helpers for the security suite (imported by name: `from security_helpers import ...`).

The suite runs its own stand-in (`LocalSupabase`, with Supabase's default privileges: anon and
authenticated get everything on new tables and functions in `public`), so it can drop and
recreate the adapter's objects for each anon-policy mode without touching other suites.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parlant_supabase_sync import ddl, ddl_upgrade
from parlant_supabase_sync.ddl_functions import RECEIPTS_TABLE
from parlant_supabase_sync.naming import DEFAULT_STORES, all_table_names

if TYPE_CHECKING:
    from parlant_supabase_sync.local.stack import LocalSupabase

#: One store's worth of tables (the sessions store, with its failed-migration tables).
SESSIONS = DEFAULT_STORES["sessions"]
STORE_TABLES = tuple(all_table_names(SESSIONS.prefix, SESSIONS.collections))
#: Every table the attacks run against.
ATTACKED_TABLES = (*STORE_TABLES, RECEIPTS_TABLE)
#: The table the per-customer policy covers in this store.
CUSTOMER_TABLE = SESSIONS.prefix

CUSTOMER_A = str(uuid.UUID(int=0xA))
CUSTOMER_B = str(uuid.UUID(int=0xB))

MODES = ("none", "allow-all", "per-customer", "upgrade")
#: Modes in which a browser role must reach nothing (allow-all is exposed by design).
LOCKED_MODES = ("none", "per-customer", "upgrade")


def seed_like_sql() -> str:
    """The older adapter's SQL, as tests/core/test_ddl_apply.py reproduces it (one source)."""
    path = Path(__file__).resolve().parents[1] / "core" / "test_ddl_apply.py"
    spec = importlib.util.spec_from_file_location("_ddl_apply_for_security", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sql: str = module.seed_like_sql()
    return sql


_RESET = """
DO $reset$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.oid::regclass::text AS name FROM pg_class c
              WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
    LOOP
        EXECUTE 'DROP TABLE IF EXISTS ' || r.name || ' CASCADE';
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure::text AS name FROM pg_proc p
              WHERE p.pronamespace = 'public'::regnamespace
    LOOP
        EXECUTE 'DROP FUNCTION IF EXISTS ' || r.name || ' CASCADE';
    END LOOP;
END
$reset$;
"""


def mode_sql(mode: str) -> str:
    """The SQL a user of `mode` ran (for "upgrade": the seed's SQL, then the upgrade)."""
    if mode == "upgrade":
        return seed_like_sql() + "\n" + ddl_upgrade.generate_upgrade()
    if mode == "upgrade-keep":
        return seed_like_sql() + "\n" + ddl_upgrade.generate_upgrade(keep_seed_policies=True)
    if mode == "seed":
        return seed_like_sql()
    return ddl.generate_schema(ddl.default_stores(), mode, include_functions=True)  # type: ignore[arg-type]


def install(stack: LocalSupabase, mode: str) -> None:
    """Drop every table and function in public, run `mode`'s SQL, and seed rows."""
    stack.execute_sql(_RESET)
    stack.execute_sql(mode_sql(mode))
    stack.execute_sql(seed_rows_sql())


def seed_rows_sql() -> str:
    statements = []
    for table in STORE_TABLES:
        if table.endswith("_failed_migrations"):
            statements.append(
                f"INSERT INTO public.\"{table}\" (id, data) VALUES "
                "('f1', '{\"id\": \"f1\"}'), ('f2', '{\"id\": \"f2\"}');"
            )
        else:
            rows = ", ".join(
                f"('{doc}', '{customer}', '{json.dumps({'id': doc, 'customer_id': customer})}')"
                for doc, customer in (("a1", CUSTOMER_A), ("a2", CUSTOMER_A), ("b1", CUSTOMER_B))
            )
            statements.append(
                f'INSERT INTO public."{table}" (id, customer_id, data) VALUES {rows};'
            )
    statements.append(
        f"DO $seed$ BEGIN IF to_regclass('public.{RECEIPTS_TABLE}') IS NOT NULL THEN "
        f'INSERT INTO public."{RECEIPTS_TABLE}" (request_id, table_name, operation, outcome) '
        "VALUES ('r-0000000000000001', 'parlant_sessions_', 'insert', '{\"inserted\": 1}'); "
        "END IF; END $seed$;"
    )
    return "\n".join(statements)


def table_state(stack: LocalSupabase) -> dict[str, Any]:
    """Every row of every attacked table that exists, read as superuser (the ground truth)."""
    tables = tables_present(stack)
    if not tables:
        return {}
    columns = ", ".join(
        f"'{table}', (SELECT jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text) "
        f'FROM public."{table}" AS t)'
        for table in tables
    )
    state: dict[str, Any] = stack.query(f"SELECT jsonb_build_object({columns})")[0][0]
    return state


def tables_present(stack: LocalSupabase) -> list[str]:
    rows = stack.query(
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relname = ANY (%s) ORDER BY 1",
        (list(ATTACKED_TABLES),),
    )
    return [row[0] for row in rows]


def row_ids(table: str) -> list[str]:
    if table == RECEIPTS_TABLE:
        return ["r-0000000000000001"]
    if table.endswith("_failed_migrations"):
        return ["f1", "f2"]
    return ["a1", "a2", "b1"]


def key_column(table: str) -> str:
    return "request_id" if table == RECEIPTS_TABLE else "id"


def new_row(table: str, marker: str) -> dict[str, Any]:
    if table == RECEIPTS_TABLE:
        return {"request_id": f"evil-{marker}-0000000000", "table_name": "t", "operation": "o"}
    if table.endswith("_failed_migrations"):
        return {"id": f"evil-{marker}", "data": {"evil": True}}
    return {"id": f"evil-{marker}", "customer_id": CUSTOMER_A, "data": {"evil": True}}


def changed_row(table: str) -> dict[str, Any]:
    if table == RECEIPTS_TABLE:
        return {"outcome": {"evil": True}}
    return {"data": {"evil": True}}


@dataclass(frozen=True)
class Attacker:
    """A credential someone without the secret key may hold."""

    name: str
    headers: Mapping[str, str]
    #: The auth user id, for a signed-in customer.
    customer: str | None = None


def attackers(stack: LocalSupabase) -> list[Attacker]:
    from parlant_supabase_sync.local.keys import mint_role_jwt

    def user(customer: str) -> str:
        return mint_role_jwt(stack.jwt_secret, "authenticated", lifetime=3600, sub=customer,
                             aud="authenticated")

    return [
        Attacker("anon key", {"apikey": stack.anon_key, "Authorization": f"Bearer {stack.anon_key}"}),
        Attacker("publishable key", {"apikey": stack.publishable_key}),
        Attacker(
            "customer A",
            {"apikey": stack.publishable_key, "Authorization": f"Bearer {user(CUSTOMER_A)}"},
            CUSTOMER_A,
        ),
        Attacker(
            "customer B",
            {"apikey": stack.publishable_key, "Authorization": f"Bearer {user(CUSTOMER_B)}"},
            CUSTOMER_B,
        ),
        Attacker("no key", {}),
    ]
