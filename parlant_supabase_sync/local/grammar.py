"""PostgREST's query-string grammar (filters, logic trees, select, order, columns).

A hand-written recursive-descent parser with the same acceptance rules as PostgREST v14's
Parsec grammar (`ApiRequest/QueryParams.hs`), including its quirks: values are not required
to consume the whole input (silent truncation, postgrest-protocol.md §3.4), quoted tokens
count as quoted only when followed by `,` or `)`, and `in.("")` is the empty list.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

# --- AST -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonOp:
    arrow: Literal["->", "->>"]
    key: str
    is_index: bool


@dataclass(frozen=True)
class Field:
    name: str
    path: tuple[JsonOp, ...] = ()


SIMPLE_OPS = ("neq", "cs", "cd", "ov", "sl", "sr", "nxr", "nxl", "adj")
# Order matters: PostgREST tries these prefixes in this order.
QUANT_OPS = ("eq", "gte", "gt", "lte", "lt", "like", "ilike", "match", "imatch")
FTS_OPS = ("fts", "plfts", "phfts", "wfts")
IS_VALUES = ("null", "not_null", "true", "false", "unknown")


@dataclass(frozen=True)
class Filter:
    field: Field
    negate: bool
    op: str  # one of SIMPLE_OPS, QUANT_OPS, FTS_OPS, "in", "is", "isdistinct"
    value: str = ""
    values: tuple[str, ...] = ()  # for "in"
    quant: Literal["any", "all"] | None = None
    lang: str | None = None


@dataclass(frozen=True)
class LogicTree:
    negate: bool
    op: Literal["and", "or"]
    children: tuple[LogicTree | Filter, ...]


@dataclass(frozen=True)
class SelectItem:
    field: Field  # name "*" for the star
    alias: str | None = None
    cast: str | None = None
    aggregate: str | None = None
    relation: bool = False  # embedded resource (not supported by the stand-in)


@dataclass(frozen=True)
class OrderTerm:
    field: Field
    direction: Literal["asc", "desc"] | None = None
    nulls: Literal["nullsfirst", "nullslast"] | None = None
    relation: str | None = None


class GrammarError(Exception):
    """A PGRST100 parse error: `message` mimics Parsec's position, `details` its expectation."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class _Fail(Exception):
    def __init__(self, pos: int, expected: str, unexpected: str | None = None) -> None:
        super().__init__(expected)
        self.pos = pos
        self.expected = expected
        self.unexpected = unexpected  # Parsec's `string` reports its first mismatching character


# --- scanner ---------------------------------------------------------------------------------


class _P:
    """Cursor over the input text; failures carry the furthest position reached."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def peek(self, n: int = 1) -> str:
        return self.s[self.i : self.i + n]

    def eof(self) -> bool:
        return self.i >= len(self.s)

    def startswith(self, lit: str) -> bool:
        return self.s.startswith(lit, self.i)

    def expect(self, lit: str, what: str | None = None) -> None:
        if not self.s.startswith(lit, self.i):
            raise _Fail(self.i, what or f'"{lit}"')
        self.i += len(lit)

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def many_none_of(self, chars: str) -> str:
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in chars:
            self.i += 1
        return self.s[start : self.i]


_DIGITS = "0123456789"


def _is_ident_char(c: str) -> bool:
    # Parsec's `letter` is Unicode-aware, its `digit` is ASCII only.
    return c.isalpha() or c in _DIGITS or c in "_ $"


def _quoted(p: _P) -> str:
    """`"..."` with backslash escaping any character; raises _Fail without consuming on error."""
    start = p.i
    if p.peek() != '"':
        raise _Fail(p.i, '"\\""')
    i = p.i + 1
    out: list[str] = []
    s = p.s
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s):
                raise _Fail(len(s), "any character")
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            p.i = i + 1
            return "".join(out)
        out.append(c)
        i += 1
    p.i = start
    raise _Fail(len(s), '"\\""')


def _sep_by_dash(p: _P, ident: Callable[[_P], str]) -> str:
    parts = [ident(p)]
    while p.peek() == "-" and p.peek(2) != "->":
        save = p.i
        p.i += 1
        try:
            parts.append(ident(p))
        except _Fail:
            # sepBy1 after a consumed separator fails the whole parse, like Parsec.
            p.i = save + 1
            raise
    return "-".join(parts)


def _identifier(p: _P) -> str:
    start = p.i
    while p.i < len(p.s) and _is_ident_char(p.s[p.i]):
        p.i += 1
    if p.i == start:
        raise _Fail(p.i, "field name (* or [a..z0..9_$])")
    return p.s[start : p.i].strip()


def _field_name(p: _P) -> str:
    if p.peek() == '"':
        try:
            return _quoted(p)
        except _Fail:
            pass
    return _sep_by_dash(p, _identifier)


def _json_key_ident(p: _P) -> str:
    start = p.i
    while p.i < len(p.s) and p.s[p.i] not in "(-:.,>)":
        p.i += 1
    if p.i == start:
        raise _Fail(p.i, "any non reserved character different from: .,>()")
    return p.s[start : p.i].strip()


def _json_key_name(p: _P) -> str:
    if p.peek() == '"':
        try:
            return _quoted(p)
        except _Fail:
            pass
    return _sep_by_dash(p, _json_key_ident)


def _json_path(p: _P) -> tuple[JsonOp, ...]:
    ops: list[JsonOp] = []
    while True:
        if p.startswith("->>"):
            arrow: Literal["->", "->>"] = "->>"
        elif p.startswith("->"):
            arrow = "->"
        else:
            return tuple(ops)
        p.i += len(arrow)
        # Integer segment: optional '-' and digits, then '->', '::', '.', ',' or end of input.
        save = p.i
        j = p.i
        if j < len(p.s) and p.s[j] == "-":
            j += 1
        k = j
        while k < len(p.s) and p.s[k] in _DIGITS:
            k += 1
        if k > j and (
            k == len(p.s) or p.s.startswith("->", k) or p.s.startswith("::", k) or p.s[k] in ".,"
        ):
            p.i = k
            ops.append(JsonOp(arrow, p.s[save:k], True))
            continue
        p.i = save
        try:
            ops.append(JsonOp(arrow, _json_key_name(p), False))
        except _Fail as key_fail:
            # Parsec reports the furthest failure of both alternatives, merging expectations
            # when they fail at the same place (`data->>--34`: column 9, "expecting digit").
            if j > save and k == j:
                index_fail = _Fail(j, "digit")
            else:
                index_fail = _Fail(save, '"-", digit')
            if index_fail.pos > key_fail.pos:
                raise index_fail from None
            if index_fail.pos == key_fail.pos:
                raise _Fail(key_fail.pos, index_fail.expected + " or " + key_fail.expected) from None
            raise


def _field(p: _P) -> Field:
    p.ws()
    name = _field_name(p)
    path = _json_path(p)
    p.ws()
    return Field(name, path)


# --- operators -------------------------------------------------------------------------------


def _list_val(p: _P) -> tuple[str, ...]:
    p.ws()
    p.expect("(")
    p.ws()
    items: list[str] = []
    while True:
        items.append(_list_element(p))
        if p.peek() == ",":
            p.i += 1
            continue
        break
    p.ws()
    p.expect(")", '")"')
    p.ws()
    return tuple(items)


def _quoted_then_delim(p: _P) -> str | None:
    """A quoted token followed by `,`/`)`/end; None (nothing consumed) otherwise."""
    if p.peek() != '"':
        return None
    save = p.i
    try:
        value = _quoted(p)
    except _Fail:
        p.i = save
        return None
    if p.eof() or p.peek() in ",)":
        return value
    p.i = save
    return None


def _list_element(p: _P) -> str:
    quoted = _quoted_then_delim(p)
    if quoted is not None:
        return quoted
    return p.many_none_of(",)")


def _logic_single_val(p: _P) -> str:
    quoted = _quoted_then_delim(p)
    if quoted is not None:
        return quoted
    if p.peek() == "{":
        j = p.s.find("}", p.i + 1)
        inner_ok = j != -1 and "{" not in p.s[p.i + 1 : j]
        if inner_ok:
            value = p.s[p.i : j + 1]
            p.i = j + 1
            return value
    return p.many_none_of(",)")


def _ci_word(p: _P, word: str) -> bool:
    seg = p.s[p.i : p.i + len(word)]
    if len(seg) == len(word) and all(a == b or a == b.upper() for a, b in zip(seg, word)):
        p.i += len(word)
        return True
    return False


_OP_EXPECTED = "operator (eq, gt, ...)"


def _op_expr(p: _P, fld: Field, in_tree: bool) -> Filter:
    start = p.i
    negate = False
    if p.startswith("not."):
        negate = True
        p.i += 4
    try:
        return _operation(p, fld, in_tree, negate)
    except _Fail as fail:
        if negate or fail.pos != start or fail.expected != _OP_EXPECTED:
            raise
        # Still at the start: the failed `string "not"` alternative joins the message, and
        # Parsec names the first character where "not" stopped matching.
        mismatch = next((c for c, want in zip(p.s[start:], "not") if c != want), None)
        if mismatch is None:
            mismatch = p.s[start + 3] if len(p.s) > start + 3 else ""
        raise _Fail(start, '"not" or ' + _OP_EXPECTED, mismatch) from None


def _operation(p: _P, fld: Field, in_tree: bool, negate: bool) -> Filter:

    def single() -> str:
        if in_tree:
            return _logic_single_val(p)
        value = p.s[p.i :]
        p.i = len(p.s)
        return value

    if p.startswith("in."):
        p.i += 3
        return Filter(fld, negate, "in", values=_list_val(p))
    if p.startswith("is."):
        p.i += 3
        for word in IS_VALUES:
            if _ci_word(p, word):
                return Filter(fld, negate, "is", value=word)
        raise _Fail(p.i, "isVal: (null, not_null, true, false, unknown)")
    if p.startswith("isdistinct."):
        p.i += len("isdistinct.")
        return Filter(fld, negate, "isdistinct", value=single())
    for op in FTS_OPS:
        if p.startswith(op):
            save = p.i
            p.i += len(op)
            lang = None
            if p.peek() == "(":
                q = p.i + 1
                k = q
                while k < len(p.s) and _is_ident_char(p.s[k]):
                    k += 1
                if k > q and k < len(p.s) and p.s[k] == ")":
                    lang = p.s[q:k].strip()
                    p.i = k + 1
            if p.peek() == ".":
                p.i += 1
                return Filter(fld, negate, op, value=single(), lang=lang)
            p.i = save
            break
    for op in SIMPLE_OPS:
        if p.startswith(op + "."):
            p.i += len(op) + 1
            return Filter(fld, negate, op, value=single())
    for op in QUANT_OPS:
        if p.startswith(op):
            save = p.i
            p.i += len(op)
            quant: Literal["any", "all"] | None = None
            if p.startswith("(any)"):
                quant = "any"
                p.i += 5
            elif p.startswith("(all)"):
                quant = "all"
                p.i += 5
            if p.peek() == ".":
                p.i += 1
                return Filter(fld, negate, op, value=single(), quant=quant)
            p.i = save
    raise _Fail(_op_failure_pos(p.s, p.i), _OP_EXPECTED)


def _op_failure_pos(s: str, i: int) -> int:
    """Where Parsec reports a failed operator: the furthest point any alternative reached.

    Every alternative is `try`-wrapped, so none consumes input, but the error of the one that
    got furthest (e.g. `eq` matched, then no `.`) wins the merge.
    """
    best = i
    for lit in ("in", "is", "isdistinct"):
        if s.startswith(lit, i):
            best = max(best, i + len(lit))
    for op in FTS_OPS:
        if s.startswith(op, i):
            best = max(best, i + len(op))
            break
    for op in SIMPLE_OPS:
        if s.startswith(op, i):
            best = max(best, i + len(op))
            break
    for op in QUANT_OPS:
        if s.startswith(op, i):
            end = i + len(op)
            if s.startswith(("(any)", "(all)"), end):
                end += 5
            best = max(best, end)
            break
    return best


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
