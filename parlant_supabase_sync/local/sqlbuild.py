"""SQL fragments for the stand-in's PostgREST engine.

Every request value becomes a bound parameter of type *unknown* (psycopg dumps `str` with
OID 0), so PostgreSQL types it from the other operand exactly like a quoted literal — the
way PostgREST binds values (postgrest-protocol.md §3.3). Identifiers go through
`psycopg.sql.Identifier`. The only SQL text spliced verbatim is produced by PostgreSQL itself
(`format_type`, `pg_get_expr`) or validated by the grammar (cast type names).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import sql

from .grammar import Field, Filter, LogicTree, OrderTerm, SelectItem


class Frag:
    """A piece of SQL with the parameters of its placeholders, in text order."""

    __slots__ = ("params", "parts")

    def __init__(self, parts: Sequence[sql.Composable] = (), params: Sequence[Any] = ()) -> None:
        self.parts: list[sql.Composable] = list(parts)
        self.params: list[Any] = list(params)

    def __add__(self, other: Frag | str) -> Frag:
        if isinstance(other, str):
            other = raw(other)
        return Frag(self.parts + other.parts, self.params + other.params)

    def __radd__(self, other: str) -> Frag:
        return raw(other) + self

    def composed(self) -> sql.Composed:
        return sql.Composed(self.parts)


def raw(text: str) -> Frag:
    # Literal '%' would be read as a placeholder marker by psycopg.
    return Frag([sql.SQL(text.replace("%", "%%"))])


def ident(name: str) -> Frag:
    return raw(sql.Identifier(name).as_string(None))


def qident(schema: str, name: str) -> Frag:
    # Quoted by psycopg, then passed through `raw` so a '%' inside a name is not read as a
    # placeholder marker once the statement has parameters.
    return raw(sql.Identifier(schema, name).as_string(None))


def param(value: str | None) -> Frag:
    """An untyped (unknown) parameter."""
    return Frag([sql.Placeholder()], [value])


def join(sep: str, frags: Iterable[Frag]) -> Frag:
    out = Frag()
    first = True
    for frag in frags:
        if not first:
            out = out + sep
        out = out + frag
        first = False
    return out


_JSON_TYPES = ("json", "jsonb")

SIMPLE_SQL = {
    "neq": "<>",
    "cs": "@>",
    "cd": "<@",
    "ov": "&&",
    "sl": "<<",
    "sr": ">>",
    "nxr": "&<",
    "nxl": "&>",
    "adj": "-|-",
}
QUANT_SQL = {
    "eq": "=",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "LIKE",
    "ilike": "ILIKE",
    "match": "~",
    "imatch": "~*",
}
FTS_SQL = {
    "fts": "to_tsquery",
    "plfts": "plainto_tsquery",
    "phfts": "phraseto_tsquery",
    "wfts": "websearch_to_tsquery",
}


class Source:
    """The relation expressions refer to: a table (`"s"."t"`) or a CTE/alias (`"pgrst_source"`).

    `types` maps column name → base type name when known; columns that are not json/jsonb
    get wrapped in `to_jsonb(...)` before a JSON path, as PostgREST does (§4.1).
    """

    def __init__(self, qualifier: Frag, types: dict[str, str] | None = None) -> None:
        self.qualifier = qualifier
        self.types = types or {}

    def column(self, name: str) -> Frag:
        if name == "*":
            return self.qualifier + ".*"
        return self.qualifier + "." + ident(name)

    def field(self, fld: Field, *, tsvector_lang: str | None = None, fts: bool = False) -> Frag:
        base = self.types.get(fld.name, "")
        col = self.column(fld.name)
        if fld.path:
            expr = col if base in _JSON_TYPES else "to_jsonb(" + col + ")"
            for op in fld.path:
                expr = expr + op.arrow + (param(op.key) + "::int" if op.is_index else param(op.key))
        else:
            expr = col
        if fts and not (base == "tsvector" and not fld.path):
            lang = param(tsvector_lang) + ", " if tsvector_lang is not None else Frag()
            expr = "to_tsvector(" + lang + expr + ")"
        return expr


def pg_array_literal(values: Sequence[str]) -> str:
    """PostgREST's `in` list → PG array literal: every element double-quoted and escaped."""
    items = []
    for value in values:
        cleaned = value.replace("\x00", "").replace("\\", "\\\\").replace('"', '\\"')
        items.append('"' + cleaned + '"')
    return "{" + ",".join(items) + "}"


def render_filter(src: Source, flt: Filter) -> Frag:
    prefix = "NOT " if flt.negate else ""
    if flt.op in FTS_SQL:
        lhs = src.field(flt.field, tsvector_lang=flt.lang, fts=True)
        lang = param(flt.lang) + ", " if flt.lang is not None else Frag()
        return prefix + lhs + " @@ " + FTS_SQL[flt.op] + "(" + lang + param(flt.value) + ")"
    lhs = src.field(flt.field)
    if flt.op in SIMPLE_SQL:
        return prefix + lhs + " " + SIMPLE_SQL[flt.op] + " " + param(flt.value)
    if flt.op in QUANT_SQL:
        value = flt.value.replace("*", "%") if flt.op in ("like", "ilike") else flt.value
        rhs = param(value)
        if flt.quant == "any":
            rhs = "ANY(" + rhs + ")"
        elif flt.quant == "all":
            rhs = "ALL(" + rhs + ")"
        return prefix + lhs + " " + QUANT_SQL[flt.op] + " " + rhs
    if flt.op == "is":
        word = {"null": "NULL", "not_null": "NOT NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}
        return prefix + lhs + " IS " + word[flt.value]
    if flt.op == "isdistinct":
        return prefix + lhs + " IS DISTINCT FROM " + param(flt.value)
    if flt.op == "in":
        if list(flt.values) == [""]:
            # PostgREST turns both `in.()` and `in.("")` into the empty list.
            return prefix + lhs + " = ANY('{}')"
        return prefix + lhs + " = ANY(" + param(pg_array_literal(flt.values)) + ")"
    raise ValueError(f"unknown operator {flt.op}")  # pragma: no cover - grammar guarantees


def render_tree(src: Source, tree: LogicTree | Filter) -> Frag:
    if isinstance(tree, Filter):
        return render_filter(src, tree)
    sep = " AND " if tree.op == "and" else " OR "
    inner = join(sep, (render_tree(src, child) for child in tree.children))
    return ("NOT (" if tree.negate else "(") + inner + ")"


def where_clause(src: Source, filters: Sequence[Filter], logic: Sequence[LogicTree]) -> Frag:
    conds = [render_filter(src, f) for f in filters] + [render_tree(src, t) for t in logic]
    if not conds:
        return Frag()
    return " WHERE " + join(" AND ", conds)


def output_name(item: SelectItem) -> str | None:
    """The JSON key of a select item: its alias, else the last JSON key of its path."""
    if item.alias is not None:
        return item.alias
    if not item.field.path:
        return None
    last = item.field.path[-1]
    if not last.is_index:
        return last.key
    for op in reversed(item.field.path):
        if not op.is_index:
            return op.key
    return item.field.name


def render_select_item(src: Source, item: SelectItem) -> Frag:
    expr = src.field(item.field) if item.field.name != "*" or item.field.path else src.column("*")
    if item.cast is not None:
        # The grammar limits casts to [letters digits _ $ space]; quoting would break `int`.
        expr = "CAST(" + expr + " AS " + raw(item.cast) + ")"
    name = output_name(item)
    if name is not None:
        expr = expr + " AS " + ident(name)
    return expr


def select_list(src: Source, items: Sequence[SelectItem]) -> Frag:
    if not items:
        return src.column("*")
    return join(", ", (render_select_item(src, item) for item in items))


def order_clause(src: Source, terms: Sequence[OrderTerm]) -> Frag:
    if not terms:
        return Frag()
    parts = []
    for term in terms:
        frag = src.field(term.field)
        if term.direction == "asc":
            frag = frag + " ASC"
        elif term.direction == "desc":
            frag = frag + " DESC"
        if term.nulls == "nullsfirst":
            frag = frag + " NULLS FIRST"
        elif term.nulls == "nullslast":
            frag = frag + " NULLS LAST"
        parts.append(frag)
    return " ORDER BY " + join(", ", parts)


def limit_offset(limit: int | None, offset: int) -> Frag:
    if limit is None and offset == 0:
        return Frag()
    lim = param(str(limit)) if limit is not None else raw("ALL")
    return " LIMIT " + lim + " OFFSET " + param(str(offset))
