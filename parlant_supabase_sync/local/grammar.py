"""PostgREST's query-string grammar (filters, logic trees, select, order, columns).

A hand-written recursive-descent parser with the same acceptance rules as PostgREST v14's
Parsec grammar (`ApiRequest/QueryParams.hs`), including its quirks: values are not required
to consume the whole input (silent truncation, postgrest-protocol.md §3.4), quoted tokens
count as quoted only when followed by `,` or `)`, and `in.("")` is the empty list.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .grammar_scan import (
    _P,
    FTS_OPS,
    IS_VALUES,
    QUANT_OPS,
    SIMPLE_OPS,
    Field,
    Filter,
    GrammarError,
    JsonOp,
    LogicTree,
    OrderTerm,
    SelectItem,
    _Fail,
    _field,
    _field_name,
    _identifier,
    _json_path,
    _op_expr,
)

__all__ = [
    "FTS_OPS",
    "IS_VALUES",
    "QUANT_OPS",
    "SIMPLE_OPS",
    "Field",
    "Filter",
    "GrammarError",
    "JsonOp",
    "LogicTree",
    "OrderTerm",
    "ParsedQuery",
    "SelectItem",
    "parse_columns",
    "parse_filter_value",
    "parse_logic",
    "parse_order",
    "parse_query",
    "parse_select",
    "parse_tree_path",
    "try_parse_filter_value",
]

# --- entry points ----------------------------------------------------------------------------


def _fail_to_error(label: str, text: str, fail: _Fail, parsed: str | None = None) -> GrammarError:
    # Parsec reports 1-based columns; details mimic its "unexpected ... expecting ..." text.
    source = text if parsed is None else parsed
    column = fail.pos + 1
    if fail.unexpected is not None:
        unexpected = f'unexpected "{fail.unexpected}"' if fail.unexpected else "unexpected end of input"
    elif fail.pos < len(source):
        unexpected = f'unexpected "{source[fail.pos]}"'
    else:
        unexpected = "unexpected end of input"
    return GrammarError(f'"{label} ({text})" (line 1, column {column})', f"{unexpected} expecting {fail.expected}")


def parse_tree_path(key: str) -> tuple[tuple[str, ...], Field]:
    """Filter key: `[embed.]*column[json path]`; trailing garbage is ignored like PostgREST."""
    p = _P(key)
    try:
        names = [_field_name(p)]
        while p.peek() == ".":
            save = p.i
            p.i += 1
            try:
                names.append(_field_name(p))
            except _Fail:
                p.i = save
                raise
        path = _json_path(p)
    except _Fail as f:
        raise _fail_to_error("failed to parse tree path", key, f) from None
    return tuple(names[:-1]), Field(names[-1], path)


def parse_filter_value(fld: Field, value: str) -> Filter:
    """Right-hand side of `col=<value>` (top level: the value after `op.` is verbatim)."""
    p = _P(value)
    try:
        return _op_expr(p, fld, in_tree=False)
    except _Fail as f:
        raise _fail_to_error("failed to parse filter", value, f) from None


def try_parse_filter_value(fld: Field, value: str) -> Filter | None:
    """For `GET /rpc`: a value that is not a filter is a function argument.

    PostgREST writes this as `pOpExpr <|> pure NoOpExpr`: Parsec only falls back when the
    filter parser failed without consuming input, and `not.`, `in.` and `is.` are consumed
    before the rest is checked — so `x=in.abc` is a 400, not the argument "in.abc".
    """
    try:
        return parse_filter_value(fld, value)
    except GrammarError:
        if value.startswith(("not.", "in.", "is.")):
            raise
        return None


def _logic_tree(p: _P) -> LogicTree | Filter:
    save = p.i
    try:
        fld = _field(p)
        p.expect(".", "delimiter (.)")
        return _op_expr(p, fld, in_tree=True)
    except _Fail as first:
        p.i = save
        negate = False
        if p.startswith("not."):
            negate = True
            p.i += 4
        if p.startswith("and"):
            op: Literal["and", "or"] = "and"
        elif p.startswith("or"):
            op = "or"
        else:
            raise _Fail(max(first.pos, p.i), "logic operator (and, or)") from None
        p.i += len(op)
        p.ws()
        p.expect("(")
        p.ws()
        children = [_logic_tree(p)]
        while True:
            p.ws()
            if p.peek() == ",":
                p.i += 1
                p.ws()
                children.append(_logic_tree(p))
                continue
            break
        p.ws()
        p.expect(")", '")"')
        p.ws()
        return LogicTree(negate, op, tuple(children))


def parse_logic(key: str, value: str) -> tuple[tuple[str, ...], LogicTree]:
    """`or=(...)`, `not.and=(...)`, `rel.or=(...)`."""
    parts = key.split(".")
    negate = "not" in parts[:-1]
    embed = tuple(x for x in parts[:-1] if x != "not")
    text = ("not." if negate else "") + parts[-1] + value
    p = _P(text)
    try:
        tree = _logic_tree(p)
    except _Fail as f:
        # Parsec reports the position within `op <> value` while the label shows only the value.
        raise _fail_to_error("failed to parse logic tree", value, f, text) from None
    if not isinstance(tree, LogicTree):  # pragma: no cover - keyword forms always give a tree
        raise GrammarError(f'"failed to parse logic tree ({value})" (line 1, column 1)', "unexpected filter")
    return embed, tree


def parse_select(text: str) -> list[SelectItem]:
    p = _P(text)
    try:
        items = _field_forest(p)
    except _Fail as f:
        raise _fail_to_error("failed to parse select parameter", text, f) from None
    return items


def _field_forest(p: _P) -> list[SelectItem]:
    items: list[SelectItem] = []
    if p.eof() or p.peek() == ")":
        return items
    items.append(_field_tree(p))
    while True:
        save = p.i
        p.ws()
        if p.peek() == ",":
            p.i += 1
            p.ws()
            items.append(_field_tree(p))
            continue
        p.i = save
        return items


def _sel_end(p: _P) -> None:
    if not (p.eof() or p.peek() in "),"):
        raise _Fail(p.i, '")", "," or end of input')


def _field_tree(p: _P) -> SelectItem:
    start = p.i
    # Embedded relations: `[alias:]name[!hint](...)` or `...name(...)`.
    try:
        p.ws()
        if p.startswith("..."):
            p.i += 3
        else:
            save = p.i
            try:
                _field_name(p)
                if p.peek() == ":" and p.peek(2) != "::":
                    p.i += 1
                else:
                    p.i = save
            except _Fail:
                p.i = save
        name = _field_name(p)
        while p.peek() == "!":
            p.i += 1
            _field_name(p)
        if p.peek() == "(" and name != "count":
            p.i += 1
            _field_forest(p)
            p.expect(")", '")"')
            p.ws()
            return SelectItem(Field(name), relation=True)
    except _Fail:
        pass
    p.i = start
    p.ws()
    if p.peek() == "*":
        save = p.i
        p.i += 1
        p.ws()
        if p.eof() or p.peek() in "),":
            return SelectItem(Field("*"))
        p.i = save
    alias = None
    save = p.i
    try:
        candidate = _field_name(p)
        if p.peek() == ":" and p.peek(2) != "::":
            p.i += 1
            alias = candidate
        else:
            p.i = save
    except _Fail:
        p.i = save
    if p.startswith("count()"):
        p.i += len("count()")
        agg_cast = _cast(p)
        p.ws()
        _sel_end(p)
        return SelectItem(Field("*"), alias, agg_cast, "count")
    fld = _field(p)
    cast = _cast(p)
    aggregate = None
    for agg in ("sum", "avg", "count", "max", "min"):
        if p.startswith("." + agg + "()"):
            p.i += len(agg) + 3
            aggregate = agg
            _cast(p)
            break
    p.ws()
    _sel_end(p)
    return SelectItem(fld, alias, cast, aggregate)


def _cast(p: _P) -> str | None:
    if not p.startswith("::"):
        return None
    p.i += 2
    return _identifier(p)


def parse_order(text: str) -> list[OrderTerm]:
    p = _P(text)
    terms: list[OrderTerm] = []
    try:
        while True:
            p.ws()
            terms.append(_order_term(p))
            p.ws()
            if p.peek() == ",":
                p.i += 1
                continue
            break
    except _Fail as f:
        raise _fail_to_error("failed to parse order", text, f) from None
    return terms


def _order_term(p: _P) -> OrderTerm:
    relation = None
    save = p.i
    try:
        rel = _field_name(p)
        if p.peek() == "(":
            p.i += 1
            fld = _field(p)
            p.expect(")")
            relation = rel
        else:
            raise _Fail(p.i, "(")
    except _Fail:
        p.i = save
        fld = _field(p)
    direction: Literal["asc", "desc"] | None = None
    nulls: Literal["nullsfirst", "nullslast"] | None = None
    if p.startswith(".asc"):
        direction = "asc"
        p.i += 4
    elif p.startswith(".desc"):
        direction = "desc"
        p.i += 5
    if p.startswith(".nullsfirst"):
        nulls = "nullsfirst"
        p.i += len(".nullsfirst")
    elif p.startswith(".nullslast"):
        nulls = "nullslast"
        p.i += len(".nullslast")
    if not (p.eof() or p.peek() == ","):
        raise _Fail(p.i, '"asc", "desc", "nullsfirst" or "nullslast"')
    return OrderTerm(fld, direction, nulls, relation)


def parse_columns(text: str, label: str = "columns") -> list[str]:
    """`columns=` / `on_conflict=`: comma-separated field names."""
    p = _P(text)
    try:
        names = [_field_name(p)]
        while True:
            save = p.i
            p.ws()
            if p.peek() == ",":
                p.i += 1
                p.ws()
                names.append(_field_name(p))
                continue
            p.i = save
            break
    except _Fail as f:
        raise _fail_to_error(f"failed to parse {label} parameter", text, f) from None
    return names


@dataclass
class ParsedQuery:
    """The query string split the way PostgREST's `QueryParams.parse` does."""

    select: list[SelectItem] = field(default_factory=list)
    select_given: bool = False
    columns: list[str] | None = None
    on_conflict: list[str] | None = None
    order: list[OrderTerm] = field(default_factory=list)
    logic: list[LogicTree] = field(default_factory=list)
    filters: list[Filter] = field(default_factory=list)
    embed_targets: list[str] = field(default_factory=list)  # embedded filters/order/logic (unsupported)
    rpc_args: list[tuple[str, str]] = field(default_factory=list)
    limit: int | None = None  # raw integer values (Haskell readMaybe); the engine builds the range
    offset: int | None = None


_RESERVED = ("select", "columns", "on_conflict")
_RESERVED_LAST = ("order", "limit", "offset", "and", "or")


def parse_query(query: list[tuple[str, str]], *, rpc_read: bool = False) -> ParsedQuery:
    """Split and parse every query parameter; raises GrammarError (PGRST100)."""
    out = ParsedQuery()
    first: dict[str, str] = {}
    for key, value in query:
        first.setdefault(key, value)
    if "select" in first:
        out.select_given = True
        out.select = parse_select(first["select"])
    if "columns" in first:
        out.columns = parse_columns(first["columns"], "columns")
    if "on_conflict" in first:
        out.on_conflict = parse_columns(first["on_conflict"], "on_conflict")
    limit_value: str | None = None
    offset_value: str | None = None
    order_seen = False
    for key, value in query:
        last = key.split(".")[-1]
        if key in _RESERVED:
            continue
        if last in _RESERVED_LAST:
            # An empty value is still parsed (`order=` and `or=` fail); `limit=` is ignored.
            embedded = "." in key and not (last in ("and", "or") and set(key.split(".")[:-1]) <= {"not"})
            if last == "order":
                terms = parse_order(value)
                if embedded:
                    out.embed_targets.append(key.rsplit(".", 1)[0])
                elif not order_seen:
                    order_seen = True
                    out.order = terms
            elif last in ("and", "or"):
                embed, tree = parse_logic(key, value)
                if embed:
                    out.embed_targets.append(".".join(embed))
                else:
                    out.logic.append(tree)
            elif last == "limit":
                if "." in key:
                    out.embed_targets.append(key.rsplit(".", 1)[0])
                else:
                    limit_value = value
            elif last == "offset":
                if "." in key:
                    out.embed_targets.append(key.rsplit(".", 1)[0])
                else:
                    offset_value = value
            continue
        if value == "" and not rpc_read:
            # PostgREST keeps `col=` as a filter and fails on its empty operator expression.
            embed, fld = parse_tree_path(key)
            parse_filter_value(fld, value)
        embed, fld = parse_tree_path(key)
        if rpc_read:
            flt = try_parse_filter_value(fld, value)
            if flt is None:
                out.rpc_args.append((key, value))
                continue
        else:
            flt = parse_filter_value(fld, value)
        if embed:
            out.embed_targets.append(".".join(embed))
        else:
            out.filters.append(flt)
    # Non-integer values are ignored; the last occurrence wins (HashMap.fromList).
    out.limit = _int_or_none(limit_value)
    out.offset = _int_or_none(offset_value)
    return out


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    # Haskell's `readMaybe :: Integer` accepts surrounding blanks and a leading '-', not '+'.
    stripped = text.strip(" \t\n\r\f\v")
    body = stripped[1:] if stripped[:1] == "-" else stripped
    if not body.isdigit() or not body.isascii():
        return None
    return int(stripped)

