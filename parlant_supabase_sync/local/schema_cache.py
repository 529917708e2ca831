"""PostgREST's schema cache: tables, columns, primary keys, functions and time zones.

`Snapshot` is the cache as PostgREST holds it: loaded in one go (`load_snapshot`) and then
answering every request until the next reload (`schema_listener.SchemaCache` reloads it on
`NOTIFY pgrst`). `LiveCatalog` answers the same questions from pg_catalog at each call; the
engine uses it only when no cache is configured (engine unit tests, `schema_cache=False`).

As in PostgREST's `SchemaCache.hs`, partitions are not tables of their own (`relispartition`)
and functions returning `trigger` are not callable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type() output: valid SQL type syntax, safe to splice
    base_type: str  # type name after unwrapping domains (json/jsonb/tsvector checks)
    default: str | None  # pg_get_expr() of the default, SQL produced by PostgreSQL itself
    generated: bool


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    kind: str
    columns: tuple[Column, ...]
    pk: tuple[str, ...]

    def column(self, name: str) -> Column | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    has_default: bool
    variadic: bool


@dataclass(frozen=True)
class Function:
    schema: str
    name: str
    params: tuple[Param, ...]  # IN / INOUT / VARIADIC parameters in order
    return_type: str
    returns_set: bool
    returns_void: bool
    returns_composite: bool  # row type, composite type, OUT/TABLE parameters
    volatile: bool
    return_columns: tuple[str, ...]
    # Base types of a row-type result's columns (PostgREST knows them from its table cache;
    # OUT/TABLE columns stay unknown and get `to_jsonb` before JSON paths).
    return_types: dict[str, str]


_TABLE_SQL_TEMPLATE = """
select n.nspname::text, c.relname::text, c.relkind::text,
  coalesce((
    select json_agg(json_build_object(
        'name', a.attname,
        -- The type json_to_recordset() parses into, as PostgREST's schema cache computes it:
        -- built-in types without typmod, domains over built-ins as their base type.
        'type', case
            when t.typtype = 'd' and bt.typnamespace = 'pg_catalog'::regnamespace then format_type(bt.oid, null)
            when t.typtype <> 'd' and t.typnamespace = 'pg_catalog'::regnamespace then format_type(a.atttypid, null)
            else format_type(a.atttypid, a.atttypmod) end,
        'base', coalesce(bt.typname, t.typname),
        -- `Prefer: missing=default` source: domain default, identity sequence, else the column
        -- default; stored generated columns have none.
        'default', case
            when t.typbasetype <> 0 and d.adbin is null then pg_get_expr(t.typdefaultbin, 0)
            when a.attidentity = 'd' then (
              select format('nextval(%%L)', dep.objid::regclass) from pg_depend dep
              where dep.refobjid = a.attrelid and dep.refobjsubid = a.attnum and dep.deptype = 'i'
                and dep.classid = 'pg_class'::regclass limit 1)
            when a.attgenerated = 's' then null
            else pg_get_expr(d.adbin, d.adrelid) end,
        'generated', a.attgenerated <> '' or a.attidentity = 'a')
      order by a.attnum)
    from pg_attribute a
    join pg_type t on t.oid = a.atttypid
    left join pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
    left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]'::json),
  coalesce((
    select json_agg(a.attname order by k.ord)
    from pg_index i
    cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
    where i.indrelid = c.oid and i.indisprimary), '[]'::json)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where {where} and c.relkind in ('r', 'v', 'm', 'f', 'p') and not c.relispartition
order by c.oid
"""
_TABLE_SQL = _TABLE_SQL_TEMPLATE.format(where="n.nspname = %s and c.relname = %s")
_ALL_TABLES_SQL = _TABLE_SQL_TEMPLATE.format(where="n.nspname = any(%s)")

_TABLE_NAMES_SQL = """
select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'f', 'p') and not c.relispartition
order by c.oid
"""

_FUNCTIONS_SQL_TEMPLATE = """
select n.nspname::text, p.proname::text,
  coalesce(p.proargnames, array[]::text[]),
  coalesce(p.proargmodes::text[], array[]::text[]),
  coalesce((select array_agg(format_type(x, null) order by o)
            from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality u(x, o)), array[]::text[]),
  p.pronargdefaults,
  p.pronargs,
  format_type(p.prorettype, null),
  p.proretset,
  p.prorettype = 'void'::regtype,
  rt.typtype::text,
  p.provolatile::text,
  coalesce((select array_agg(a.attname::text order by a.attnum) from pg_attribute a
            where a.attrelid = rt.typrelid and a.attnum > 0 and not a.attisdropped), array[]::text[]),
  coalesce((select array_agg(coalesce(bt.typname, t.typname)::text order by a.attnum) from pg_attribute a
            join pg_type t on t.oid = a.atttypid
            left join pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
            where a.attrelid = rt.typrelid and a.attnum > 0 and not a.attisdropped), array[]::text[])
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type rt on rt.oid = p.prorettype
where {where} and p.prokind = 'f' and p.prorettype <> 'trigger'::regtype
order by p.oid
"""
_FUNCTIONS_SQL = _FUNCTIONS_SQL_TEMPLATE.format(where="n.nspname = %s and p.proname = %s")
_ALL_FUNCTIONS_SQL = _FUNCTIONS_SQL_TEMPLATE.format(where="n.nspname = any(%s)")

_FUNCTION_NAMES_SQL = """
select distinct p.proname::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = %s and p.prokind = 'f' and p.prorettype <> 'trigger'::regtype
"""

_TIMEZONES_SQL = "select name from pg_timezone_names"


def _table_from_row(row: Sequence[Any]) -> Table:
    schema, name, kind, cols, pk = row
    columns = tuple(
        Column(c["name"], c["type"], c["base"], c["default"], bool(c["generated"])) for c in cols
    )
    return Table(schema, name, kind, columns, tuple(pk))


def lookup_table(conn: psycopg.Connection[Any], schema: str, name: str) -> Table | None:
    row = conn.execute(_TABLE_SQL, (schema, name)).fetchone()
    return None if row is None else _table_from_row(row)


def table_names(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    return [r[0] for r in conn.execute(_TABLE_NAMES_SQL, (schema,)).fetchall()]


def function_names(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    return [r[0] for r in conn.execute(_FUNCTION_NAMES_SQL, (schema,)).fetchall()]


def lookup_functions(conn: psycopg.Connection[Any], schema: str, name: str) -> list[Function]:
    return [_function_from_row(row) for row in conn.execute(_FUNCTIONS_SQL, (schema, name)).fetchall()]


def _function_from_row(row: Sequence[Any]) -> Function:
    (schema, name, argnames, argmodes, argtypes, ndefaults, nargs, rettype, retset, retvoid,
     rettyptype, volatile, relcols, reltypes) = row
    modes = list(argmodes) or ["i"] * len(argtypes)
    names = list(argnames) + [""] * (len(argtypes) - len(argnames))
    in_params: list[tuple[str, str, bool]] = []
    out_names: list[str] = []
    for pname, pmode, ptype in zip(names, modes, argtypes):
        if pmode in ("i", "b", "v"):
            in_params.append((pname, ptype, pmode == "v"))
        if pmode in ("o", "b", "t"):
            out_names.append(pname)
    first_default = nargs - ndefaults
    params = tuple(
        Param(pname, ptype, idx >= first_default, variadic) for idx, (pname, ptype, variadic) in enumerate(in_params)
    )
    composite = rettyptype == "c" or (rettype == "record" and bool(out_names))
    return_columns = tuple(relcols) if rettyptype == "c" else tuple(out_names)
    return Function(
        schema,
        name,
        params,
        rettype,
        bool(retset),
        bool(retvoid),
        composite,
        volatile == "v",
        return_columns,
        dict(zip(relcols, reltypes)) if rettyptype == "c" else {},
    )


class Catalog(Protocol):
    """What the engine asks the schema cache (a `Snapshot` or the `LiveCatalog`)."""

    def table(self, schema: str, name: str) -> Table | None: ...

    def table_names(self, schema: str) -> list[str]: ...

    def functions(self, schema: str, name: str) -> list[Function]: ...

    def function_names(self, schema: str) -> list[str]: ...

    def timezone_ok(self, name: str) -> bool: ...


@dataclass(frozen=True)
class Snapshot:
    """One loaded schema cache; immutable, so requests may share it across threads."""

    schemas: tuple[str, ...]
    tables: Mapping[tuple[str, str], Table] = field(default_factory=dict)
    routines: Mapping[tuple[str, str], tuple[Function, ...]] = field(default_factory=dict)
    timezones: frozenset[str] = frozenset()

    def table(self, schema: str, name: str) -> Table | None:
        return self.tables.get((schema, name))

    def table_names(self, schema: str) -> list[str]:
        return [name for (s, name) in self.tables if s == schema]

    def functions(self, schema: str, name: str) -> list[Function]:
        return list(self.routines.get((schema, name), ()))

    def function_names(self, schema: str) -> list[str]:
        return sorted({name for (s, name) in self.routines if s == schema})

    def timezone_ok(self, name: str) -> bool:
        return name in self.timezones

    def summary(self) -> str:
        return f"{len(self.tables)} relations, {sum(len(f) for f in self.routines.values())} functions"


def load_snapshot(conn: psycopg.Connection[Any], schemas: Sequence[str]) -> Snapshot:
    """Query the whole schema cache for `schemas` (PostgREST's querySchemaCache)."""
    wanted = list(schemas)
    tables = {}
    for row in conn.execute(_ALL_TABLES_SQL, (wanted,)).fetchall():
        table = _table_from_row(row)
        tables[(table.schema, table.name)] = table
    routines: dict[tuple[str, str], list[Function]] = {}
    for row in conn.execute(_ALL_FUNCTIONS_SQL, (wanted,)).fetchall():
        func = _function_from_row(row)
        routines.setdefault((func.schema, func.name), []).append(func)
    timezones = frozenset(r[0] for r in conn.execute(_TIMEZONES_SQL).fetchall())
    return Snapshot(tuple(schemas), tables, {k: tuple(v) for k, v in routines.items()}, timezones)


class LiveCatalog:
    """The same answers as a `Snapshot`, read from pg_catalog on `conn` at every call."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def table(self, schema: str, name: str) -> Table | None:
        return lookup_table(self._conn, schema, name)

    def table_names(self, schema: str) -> list[str]:
        return table_names(self._conn, schema)

    def functions(self, schema: str, name: str) -> list[Function]:
        return lookup_functions(self._conn, schema, name)

    def function_names(self, schema: str) -> list[str]:
        return function_names(self._conn, schema)

    def timezone_ok(self, name: str) -> bool:
        row = self._conn.execute("select 1 from pg_timezone_names where name = %s", [name]).fetchone()
        return row is not None


_ROLE_SETTINGS_SQL = """
select split_part(cfg, '=', 1), substr(cfg, strpos(cfg, '=') + 1)
from pg_db_role_setting s
join pg_roles r on r.oid = s.setrole
cross join lateral unnest(s.setconfig) cfg
left join pg_settings ps on ps.name = split_part(cfg, '=', 1)
where r.rolname = %s
  and s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
  and (ps.context = 'user' or (ps.name is null and strpos(split_part(cfg, '=', 1), '.') > 0))
order by s.setdatabase
"""


def role_settings(conn: psycopg.Connection[Any], role: str) -> list[tuple[str, str]]:
    """`ALTER ROLE ... SET` values of `role`: SET ROLE does not apply them, PostgREST does.

    Database-specific values come last so they win. Only settings an ordinary role may change
    are returned (e.g. Supabase's `statement_timeout` for anon/authenticated).
    """
    return [(k, v) for k, v in conn.execute(_ROLE_SETTINGS_SQL, (role,)).fetchall()]


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def closest(name: str, candidates: list[str], threshold: float = 0.75) -> str | None:
    """Best fuzzy match scoring at least `threshold` (PostgREST's "Perhaps you meant" hints)."""
    best: tuple[float, str] | None = None
    lowered = name.lower()
    for cand in candidates:
        longest = max(len(lowered), len(cand))
        if longest == 0:
            continue
        score = 1 - _levenshtein(lowered, cand.lower()) / longest
        if score >= threshold and (best is None or score > best[0]):
            best = (score, cand)
    return best[1] if best else None
