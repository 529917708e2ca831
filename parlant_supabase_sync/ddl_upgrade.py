"""The upgrade script: brings tables created by the older adapter's seed SQL (and 0.1's) up to
this schema — missing tables and failed-table keys, the "C" collation, the retired indexes, the
seed's allow-all policies. `ddl.py` owns the table layout and the statements shared with a
fresh install; this module adds what only the upgrade does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from parlant_supabase_sync.ddl import (
    _FAILED_UTC_DEFAULT,
    REGENERATE_HINT,
    _create_table,
    _layout,
    _schema_part,
    _section,
    _Table,
    _table_setup,
    allow_all_policy_name,
    default_stores,
    generate_functions,
)
from parlant_supabase_sync.ddl_functions import FAILED_KEY, LEGACY_MERGE_FUNCTION
from parlant_supabase_sync.ddl_grants import BROWSER_ROLES, TABLE_PRIVILEGES
from parlant_supabase_sync.ddl_indexes import retired_indexes
from parlant_supabase_sync.naming import MIRRORED_COLUMNS, index_name, seed_index_name
from parlant_supabase_sync.sqltext import (
    RELOAD_SCHEMA_CACHE,
    dollar_quote,
    qualified,
    quote_ident,
    quote_literal,
    text_array,
)

__all__ = ["generate_upgrade", "seed_policy_warning"]


def generate_upgrade(
    stores: Mapping[str, Iterable[str]] | None = None,
    *,
    schema: str = "public",
    keep_seed_policies: bool = False,
) -> str:
    """The SQL bringing tables created by the older adapter's seed SQL up to this schema.

    Adds what is missing (tables, the failed_utc column, comments, indexes, functions), drops
    the older SQL's GIN index on `data` (`ddl_indexes.retired_indexes`: no query uses it), switches
    the text columns to the "C" collation, enables RLS and sets the privileges of a fresh
    install: anon and authenticated lose everything on the adapter's tables and functions. The
    seed's "Allow all operations on <table>" policies are dropped, unless `keep_seed_policies`
    (see `seed_policy_warning`): then they stay, with the table privileges they need.
    """
    quote_ident(schema)
    tables = _layout(default_stores() if stores is None else stores)
    parts = [
        REGENERATE_HINT,
        (
            "-- Upgrade for tables created by the older Supabase adapter's SQL: adds what is\n"
            '-- missing, switches the mirrored text columns to COLLATE "C" (so ordering matches\n'
            "-- Python's on any server) and gives the tables the privileges of a fresh install.\n"
            "-- It drops no table, column or data."
        ),
        *_schema_part(schema, "allow-all" if keep_seed_policies else "none"),
        _section("tables missing so far"),
        "\n".join(_create_table(schema, table) for table in tables),
        _section("failed-migration tables: failed_utc column"),
        "\n".join(_add_failed_utc(schema, table) for table in tables if table.failed),
        _section('text columns: COLLATE "C" (indexes on them are rebuilt)'),
        _collation_fix(schema, tables),
        _section("the older SQL's GIN index on data (no query uses it; see ddl_indexes.py)"),
        _retired_indexes(schema, tables),
        _section("comments, row-level security, privileges, indexes"),
        "\n\n".join(_table_setup(schema, table) for table in tables),
        generate_functions(schema=schema, header=False).rstrip("\n"),
        _section("the function earlier releases merged through (replaced by parlant_write)"),
        f"DROP FUNCTION IF EXISTS {qualified(schema, LEGACY_MERGE_FUNCTION)}(text, text, jsonb, boolean);",
        _section("the older adapter's allow-all policies"),
        _seed_policies(schema, tables, keep=keep_seed_policies),
        RELOAD_SCHEMA_CACHE,
    ]
    return "\n\n".join(parts) + "\n"


def seed_policy_warning(keep_seed_policies: bool) -> str | None:
    """A warning for the CLI to print when the upgrade keeps the seed's policies, else None."""
    if not keep_seed_policies:
        return None
    return (
        "--keep-seed-policies keeps the older adapter's \"Allow all operations on …\" policies "
        "and grants anon and authenticated SELECT, INSERT, UPDATE and DELETE on every table: "
        "anyone holding the anon/publishable key (it ships in browser code) can read, change "
        "and delete every conversation, customer and variable, and `check` reports it. Keep "
        "them only while something of yours still reads these tables with the anon key."
    )


def _seed_policies(schema: str, tables: Sequence[_Table], *, keep: bool) -> str:
    if keep:
        roles = ", ".join(quote_ident(role) for role in BROWSER_ROLES)
        grants = "\n".join(
            f"GRANT {TABLE_PRIVILEGES} ON TABLE {qualified(schema, table.name)} TO {roles};"
            for table in tables
        )
        return (
            "-- keep_seed_policies: the older SQL's \"Allow all operations on <table>\" policies stay,\n"
            "-- with the privileges they need.\n"
            f"-- WARNING: {seed_policy_warning(True)}\n" + grants
        )
    drops = "\n".join(
        f"DROP POLICY IF EXISTS {quote_ident(allow_all_policy_name(table.name))} "
        f"ON {qualified(schema, table.name)};"
        for table in tables
    )
    return (
        '-- The older SQL created one "Allow all operations on <table>" policy per table. They\n'
        "-- let anyone holding the anon/publishable key (public by design: it ships in browser\n"
        "-- code) read, change and delete every conversation. This adapter uses the secret or\n"
        "-- service_role key, which bypasses RLS, so it needs none of them: they are dropped\n"
        "-- (`parlant-supabase-sync sql --upgrade --keep-seed-policies` keeps them).\n" + drops
    )


def _add_failed_utc(schema: str, table: _Table) -> str:
    target = qualified(schema, table.name)
    column = quote_ident("failed_utc")
    # Added without a default first, so rows that failed before the upgrade keep NULL instead
    # of claiming they failed at upgrade time.
    # The seed's failed tables have no key: rows get one (numbered as they stand) so listings
    # page by it.
    return (
        f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {column} text COLLATE {quote_ident('C')};\n"
        f"ALTER TABLE {target} ALTER COLUMN {column} SET DEFAULT {_FAILED_UTC_DEFAULT};\n"
        f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {quote_ident(FAILED_KEY)} bigint "
        "GENERATED BY DEFAULT AS IDENTITY;"
    )


def _collation_fix(schema: str, tables: Sequence[_Table]) -> str:
    names = [table.name for table in tables]
    columns = list(MIRRORED_COLUMNS) + ["failed_utc"]
    body = f"""
DECLARE
    v_c oid := (SELECT oid FROM pg_catalog.pg_collation
                 WHERE collname = 'C' AND collnamespace = 'pg_catalog'::regnamespace);
    r record;
BEGIN
    FOR r IN
        SELECT c.relname::text AS table_name, a.attname::text AS column_name
          FROM pg_catalog.pg_class AS c
          JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid
         WHERE c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace AS n
                                  WHERE n.nspname = {quote_literal(schema)})
           AND c.relkind IN ('r', 'p')
           AND c.relname::text = ANY ({text_array(names)})
           AND a.attname::text = ANY ({text_array(columns)})
           AND a.attnum > 0 AND NOT a.attisdropped
           AND a.atttypid = 'text'::regtype
           AND a.attcollation <> v_c
         ORDER BY 1, 2
    LOOP
        BEGIN
            EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN %I TYPE text COLLATE "C"',
                           {quote_literal(schema)}, r.table_name, r.column_name);
        EXCEPTION WHEN feature_not_supported THEN
            -- A view or policy depends on the column; report instead of dropping it.
            RAISE WARNING 'parlant-supabase-sync: kept the collation of %.%: %', r.table_name,
                r.column_name, SQLERRM
                USING HINT = 'Drop the dependent view or policy, run this script again, then '
                             'recreate it; until then ordering follows the database collation.';
        END;
    END LOOP;
END
"""
    return f"DO {dollar_quote(body, 'do')};"


def _retired_indexes(schema: str, tables: Sequence[_Table]) -> str:
    """DROP INDEX for the older SQL's indexes this schema no longer has.

    Named as `_layout` named them: the seed's name, or `index_name` where a kept index of the
    table already has the seed's (cut) name; never the name of an index any table keeps.
    """
    kept = {index.name for table in tables for index in table.indexes}
    names: list[str] = []
    for table in tables:
        own = {index.name for index in table.indexes}
        for suffix in () if table.failed else retired_indexes(table.collection):
            name = seed_index_name(table.name, suffix)
            if name in own:
                name = index_name(table.name, suffix)
            if name not in kept and name not in names:
                names.append(name)
    return "\n".join(f"DROP INDEX IF EXISTS {qualified(schema, name)};" for name in names)
