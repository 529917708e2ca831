"""Privileges of the API roles in the generated SQL: what anon and authenticated lose, the
anon-policy modes, and a non-public schema's `CREATE SCHEMA` / `GRANT USAGE`.

Supabase's roles: `service_role` (the secret/service_role key; bypasses RLS) gets explicit
grants on every adapter object; `anon` and `authenticated` (the publishable/anon key and signed-in
users) get only what the chosen anon policy needs. Statements naming these roles run only where
the role exists, so the scripts also run on a PostgreSQL without Supabase's roles.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from .ddl_functions import FUNCTION_NAMES, SERVICE_ROLE
from .errors import ConfigurationError
from .sqltext import dollar_quote, quote_ident, quote_literal, text_array

__all__ = [
    "ANON_POLICIES",
    "BROWSER_ROLES",
    "TABLE_PRIVILEGES",
    "AnonPolicy",
    "check_anon_policy",
    "for_existing_roles",
    "revoke_function_execute",
    "revoke_table_privileges",
    "schema_roles",
    "schema_setup",
    "shown_name",
]

AnonPolicy = Literal["none", "allow-all", "per-customer"]
ANON_POLICIES: tuple[AnonPolicy, ...] = ("none", "allow-all", "per-customer")

BROWSER_ROLES = ("anon", "authenticated")
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def check_anon_policy(anon_policy: str) -> None:
    """Refuse an anon policy that is not one of `ANON_POLICIES` (`ConfigurationError`)."""
    if anon_policy not in ANON_POLICIES:
        raise ConfigurationError(
            f"unknown anon policy {anon_policy!r}: choose one of {', '.join(ANON_POLICIES)}"
        )


def for_existing_roles(roles: Sequence[str], statement: Callable[[str], str]) -> str:
    """A DO block running `statement(quoted role)` for each of `roles` that exists, so the
    script also runs on a PostgreSQL without Supabase's roles."""
    branches = "".join(
        "    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = "
        f"{quote_literal(role)}) THEN\n"
        f"        {statement(quote_ident(role))}\n"
        "    END IF;\n"
        for role in roles
    )
    body = "\nBEGIN\n" + branches + "END\n"
    return f"DO {dollar_quote(body, 'do')};"


def revoke_table_privileges(target: str) -> str:
    """Take every privilege on the (qualified) table away from PUBLIC, anon and authenticated.

    Supabase's default privileges give anon and authenticated ALL (TRUNCATE and TRIGGER too)
    on every new table in `public`; each anon policy then grants back exactly what it needs.
    """
    return f"REVOKE ALL ON TABLE {target} FROM PUBLIC;\n" + for_existing_roles(
        BROWSER_ROLES, lambda role: f"REVOKE ALL ON TABLE {target} FROM {role};"
    )


def revoke_function_execute(schema: str) -> str:
    """Take EXECUTE on every adapter function in `schema` away from PUBLIC, anon and
    authenticated (service_role keeps its explicit grant).

    PostgreSQL grants EXECUTE to PUBLIC on every new function, and Supabase's default
    privileges grant it to anon and authenticated in `public`. "Adapter function" = one of
    FUNCTION_NAMES or any function whose comment starts with `parlant-supabase-sync:`, so
    helper functions are covered too, whatever their signature.
    """
    revokes = "".join(
        f"        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {quote_literal(role)}) THEN\n"
        f"            EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %I', r.signature, "
        f"{quote_literal(role)});\n"
        "        END IF;\n"
        for role in BROWSER_ROLES
    )
    body = f"""
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure::text AS signature
          FROM pg_catalog.pg_proc AS p
         WHERE p.pronamespace = (SELECT n.oid FROM pg_catalog.pg_namespace AS n
                                  WHERE n.nspname = {quote_literal(schema)})
           AND (p.proname::text = ANY ({text_array(FUNCTION_NAMES)})
                OR pg_catalog.obj_description(p.oid, 'pg_proc') LIKE 'parlant-supabase-sync:%')
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', r.signature);
{revokes}    END LOOP;
END
"""
    return f"DO {dollar_quote(body, 'do')};"


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def shown_name(schema: str) -> str:
    """A schema name for a comment: as is when plain, else quoted by repr (no line breaks)."""
    return schema if _PLAIN_NAME.fullmatch(schema) else repr(schema)


def schema_roles(anon_policy: AnonPolicy) -> tuple[str, ...]:
    """The API roles that need USAGE on a non-public schema: the server key's role always, a
    browser role only where the anon policy grants it something there."""
    check_anon_policy(anon_policy)
    if anon_policy == "allow-all":
        return (SERVICE_ROLE, *BROWSER_ROLES)
    if anon_policy == "per-customer":
        return (SERVICE_ROLE, "authenticated")
    return (SERVICE_ROLE,)


def schema_setup(schema: str, anon_policy: AnonPolicy = "none") -> str:
    """`CREATE SCHEMA` and `GRANT USAGE` for a schema other than public, with what to change
    in the project's API settings ("" for public, which Supabase sets up)."""
    if schema == "public":
        return ""
    target = quote_ident(schema)
    roles = schema_roles(anon_policy)
    name = shown_name(schema)
    return (
        f"-- The Data API serves only its exposed schemas: add {name} under Supabase Dashboard →\n"
        "-- Project Settings → Data API → Exposed schemas (self-hosted: PGRST_DB_SCHEMAS; Supabase\n"
        f"-- CLI: [api] schemas in supabase/config.toml) and set SUPABASE_SCHEMA={name}. Until then\n"
        '-- every request answers PGRST106 ("Invalid schema").\n'
        f"CREATE SCHEMA IF NOT EXISTS {target};\n\n"
        f"-- USAGE lets {', '.join(roles)} reach objects in the schema; each table's and function's\n"
        "-- own grants still decide what they may do. No default privileges are needed: every\n"
        "-- object this script creates is granted explicitly (Supabase's defaults cover public).\n"
        + for_existing_roles(roles, lambda role: f"GRANT USAGE ON SCHEMA {target} TO {role};")
    )
