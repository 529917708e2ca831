"""The scanner, AST and operator grammar behind `grammar.py` (PostgREST's QueryParams.hs).

Pure: no I/O. `grammar.py` holds the entry points (`parse_query`, `parse_select`, …).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


