"""Parlant ``Where`` filters, cursors and sorts → PostgREST query parameters (pure, no I/O).

Semantics are typed like JSON, and match Parlant's ``matches_filters`` (the Transient database)
wherever Transient gives an answer:

* A field that is one of the mirrored columns (``id``, ``version``, ``creation_utc``,
  ``session_id``, ``customer_id``, ``agent_id``) is compared through its ``COLLATE "C"`` column
  when the operand is a ``str``; every other comparison goes to ``data->field`` (jsonb) with a
  JSON operand. Numbers compare numerically (``9 < 10 < 100``), strings as strings, booleans as
  booleans.
* ``$gt/$gte/$lt/$lte`` only match values of the operand's JSON type: each comparison is bounded
  to its type's bucket of PostgreSQL's jsonb order (Object > Array > Boolean > Number > String >
  Null). The boundary between strings and numbers is the jsonb number ``-1e131071``; documents
  written through :mod:`parlant_supabase_sync.rows` never hold a number at or below it (rows
  refuses numbers whose magnitude reaches ``1e131071``; PostgreSQL itself stops at 131072
  digits).
* ``$in []`` matches nothing, ``$nin []`` matches everything. ``$and``/``$or`` nest to any depth;
  ``{"$and": []}`` is true and ``{"$or": []}`` false, as in Transient.

Deliberate differences from Transient (the README copies this list):

* A missing field never raises ``KeyError``: it matches only ``$ne`` and ``$nin`` (MongoDB's rule).
* A value of another JSON type never matches ``$gt/$gte/$lt/$lte`` (Transient raises
  ``TypeError`` for ``"1" < 1``).
* Booleans are not numbers: ``True`` never equals ``1`` and ``False`` never equals ``0``
  (Transient follows Python, where ``True == 1``).
* A dict mixing field keys with ``$and``/``$or`` ANDs everything (Transient ignores the fields
  when a logical key comes first, and raises when a field comes first).
* A float is compared as the decimal written by ``json.dumps`` (its shortest repr), so a float
  above 2**53 may compare differently with an int than Python compares them.
* Ordering of strings stored only in jsonb (not in a mirrored column) follows the database's
  collation; Python compares code points. Mirrored columns use ``COLLATE "C"`` (code points).
  Parlant compares and sorts jsonb strings nowhere; equality is exact either way.
* Unknown operators, ``$``-keys other than ``$and``/``$or``, and operands that are not
  ``str``/``int``/``float``/``bool``/``None`` raise :class:`UnsupportedFilter`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._types import Cursor, SortDirection
from .errors import UnsupportedFilter
from .naming import MIRRORED_COLUMNS

__all__ = [
    "MIRRORED_COLUMNS",
    "NUMBER_FLOOR",
    "Compiled",
    "Condition",
    "Order",
    "compile_cursor",
    "compile_filter",
    "compile_order",
    "compile_where",
    "encode_cursor",
    "encode_order",
    "encode_where",
    "id_pinned",
    "matches_nothing",
    "quote",
]


# Every string sorts below every jsonb number and rows.py keeps numbers above this one, so
# `lt.<floor>` selects strings and `gte.<floor>` selects numbers (see module docstring).
NUMBER_FLOOR = "-1e131071"

_COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
_OPERATORS = frozenset({"$eq", "$ne", "$in", "$nin", *_COMPARISONS})
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# `in` list elements that PostgREST reads verbatim without quotes (ids, mostly): leaving the
# quotes off keeps the tag listings' URLs a quarter shorter. Everything else is quoted.
_BARE_ELEMENT = re.compile(r"[A-Za-z0-9_]+\Z")


def quote(value: str) -> str:
    """Double-quote ``value`` for a PostgREST ``in`` list or logic tree (``\\`` and ``"`` escaped).

    This is the only function that builds quoted filter text.
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _element(raw: str) -> str:
    if _BARE_ELEMENT.match(raw) and raw.lower() != "null":
        return raw
    return quote(raw)


# --- expression tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Leaf:
    """``path op.value``; ``raw`` is the unquoted value (quoted only inside trees)."""

    path: str
    op: str
    raw: str
    quotable: bool = True


@dataclass(frozen=True)
class _InList:
    path: str
    negated: bool
    raws: tuple[str, ...]


@dataclass(frozen=True)
class _And:
    children: tuple[_Node, ...]


@dataclass(frozen=True)
class _Or:
    children: tuple[_Node, ...]


@dataclass(frozen=True)
class _Const:
    value: bool


_Node = _Leaf | _InList | _And | _Or | _Const
# The only two constants: compared by identity.
_TRUE = _Const(True)
_FALSE = _Const(False)


def _json_path(field: str) -> str:
    key = field if _SIMPLE_KEY.match(field) else quote(field)
    return f"data->{key}"


def _json_literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise UnsupportedFilter(f"cannot filter on {value!r}: JSON has no NaN or Infinity")
        return "number"
    if isinstance(value, str):
        if "\x00" in value:
            raise UnsupportedFilter("filter values cannot contain \\u0000 (jsonb cannot store it)")
        return "string"
    raise UnsupportedFilter(
        f"unsupported filter operand {value!r} ({type(value).__name__}): "
        "use str, int, float, bool or None"
    )


# Bounds of each JSON type's bucket in jsonb order: (op, literal) pairs ANDed with a comparison.
_LOWER_BOUND = {"string": ("gte", '""'), "number": ("gte", NUMBER_FLOOR), "boolean": ("gte", "false")}
_UPPER_BOUND = {"string": ("lt", NUMBER_FLOOR), "number": ("lt", "false"), "boolean": ("lte", "true")}


def _compare(field: str, op: str, operand: Any) -> _Node:
    kind = _json_type(operand)
    if field in MIRRORED_COLUMNS and kind == "string":
        if op == "$eq":
            return _Leaf(field, "eq", operand)
        if op == "$ne":
            return _Leaf(field, "isdistinct", operand)
        # A NULL column (missing or non-string value) never satisfies a comparison.
        return _Leaf(field, op[1:], operand)
    path = _json_path(field)
    literal = _json_literal(operand)
    if op == "$eq":
        return _Leaf(path, "eq", literal)
    if op == "$ne":
        return _Leaf(path, "isdistinct", literal)
    if kind == "null":
        raise UnsupportedFilter(f"{op} cannot compare with None (field {field!r})")
    bound = _UPPER_BOUND[kind] if op in ("$gt", "$gte") else _LOWER_BOUND[kind]
    return _And((_Leaf(path, op[1:], literal), _Leaf(path, bound[0], bound[1])))


def _field(field: str, spec: Any) -> _Node:
    if not isinstance(spec, Mapping):
        raise UnsupportedFilter(
            f"field {field!r} needs an operator dict such as {{'$eq': value}}, got {spec!r}"
        )
    parts: list[_Node] = []
    for op, operand in spec.items():
        if op not in _OPERATORS:
            raise UnsupportedFilter(
                f"unsupported operator {op!r} on field {field!r}; supported: "
                + ", ".join(sorted(_OPERATORS))
            )
        if op in ("$in", "$nin"):
            if isinstance(operand, (str, bytes)) or not isinstance(operand, Sequence):
                raise UnsupportedFilter(f"{op} on field {field!r} needs a list, got {operand!r}")
            single = "$eq" if op == "$in" else "$ne"
            members = tuple(_compare(field, single, value) for value in operand)
            parts.append(_Or(members) if op == "$in" else _And(members))
        else:
            parts.append(_compare(field, op, operand))
    return _And(tuple(parts))


def _build(where: Any) -> _Node:
    if not isinstance(where, Mapping):
        raise UnsupportedFilter(f"a filter must be a dict, got {where!r}")
    parts: list[_Node] = []
    for key, value in where.items():
        if not isinstance(key, str):
            raise UnsupportedFilter(f"filter keys must be strings, got {key!r}")
        if key in ("$and", "$or"):
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
                raise UnsupportedFilter(f"{key} needs a list of filters, got {value!r}")
            children = tuple(_build(sub) for sub in value)
            parts.append(_And(children) if key == "$and" else _Or(children))
        elif key.startswith("$"):
            raise UnsupportedFilter(f"unsupported logical operator {key!r}; use $and or $or")
        else:
            parts.append(_field(key, value))
    return _And(tuple(parts))


# --- simplification ------------------------------------------------------------------------


def _simplify(node: _Node) -> _Node:
    if isinstance(node, (_Leaf, _InList, _Const)):
        return node
    is_and = isinstance(node, _And)
    absorbing, neutral = (_FALSE, _TRUE) if is_and else (_TRUE, _FALSE)
    flat: list[_Node] = []
    for child in node.children:
        child = _simplify(child)
        if child is absorbing:
            return absorbing
        if child is neutral:
            continue
        if isinstance(child, type(node)):
            flat.extend(child.children)
        else:
            flat.append(child)
    flat = _collapse(flat, is_and)
    if not flat:
        return neutral
    if len(flat) == 1:
        return flat[0]
    return _And(tuple(flat)) if is_and else _Or(tuple(flat))


def _collapse(children: list[_Node], is_and: bool) -> list[_Node]:
    """``$or`` of ``eq`` on one path → ``in``; ``$and`` of ``isdistinct`` → ``not.in`` (+ NULLs).

    Keeps URLs short for the tag listings (hundreds of ids). A lone empty string never goes
    into an ``in`` list: PostgREST reads ``in.("")`` as the empty list.
    """
    op = "isdistinct" if is_and else "eq"
    groups: dict[str, list[str]] = {}
    for child in children:
        if isinstance(child, _Leaf) and child.op == op and child.raw != "":
            groups.setdefault(child.path, []).append(child.raw)
    if not groups:
        return children
    result: list[_Node] = []
    emitted: set[str] = set()
    for child in children:
        if not (isinstance(child, _Leaf) and child.op == op and child.raw != ""):
            result.append(child)
        elif child.path not in emitted:
            # The group goes where its first member was; later members are already in it.
            emitted.add(child.path)
            raws = tuple(dict.fromkeys(groups[child.path]))
            if len(raws) == 1:
                result.append(_Leaf(child.path, op, raws[0]))
            elif is_and and child.path != "id":
                # `not.in` drops NULL (missing field / non-string column); $ne keeps it.
                # (`id` is the primary key: never NULL.)
                in_list = _InList(child.path, negated=True, raws=raws)
                result.append(_Or((in_list, _Leaf(child.path, "is", "null", quotable=False))))
            else:
                result.append(_InList(child.path, negated=is_and, raws=raws))
    return result


# --- rendering -----------------------------------------------------------------------------


def _tree(node: _Node) -> str:
    if isinstance(node, _Leaf):
        value = quote(node.raw) if node.quotable else node.raw
        return f"{node.path}.{node.op}.{value}"
    if isinstance(node, _InList):
        negation = "not." if node.negated else ""
        return f"{node.path}.{negation}in.({','.join(_element(raw) for raw in node.raws)})"
    if isinstance(node, (_And, _Or)):
        word = "and" if isinstance(node, _And) else "or"
        return f"{word}({','.join(_tree(child) for child in node.children)})"
    raise AssertionError("constants are simplified away before rendering")


def _path_json(path: str) -> dict[str, str]:
    """``{"col": name}`` for a mirrored column, ``{"key": field}`` for ``data->field``."""
    if not path.startswith("data->"):
        return {"col": path}
    key = path[len("data->") :]
    if key.startswith('"'):
        key = re.sub(r"\\(.)", r"\1", key[1:-1])
    return {"key": key}


def _json(node: _Node) -> dict[str, Any]:
    """The same tree for ``parlant_find`` (ddl_find.py compiles it to the same SQL)."""
    if isinstance(node, _Leaf):
        return {"p": _path_json(node.path), "op": node.op, "v": node.raw}
    if isinstance(node, _InList):
        return {"p": _path_json(node.path), "in": list(node.raws), "not": node.negated}
    if isinstance(node, (_And, _Or)):
        word = "and" if isinstance(node, _And) else "or"
        return {word: [_json(child) for child in node.children]}
    raise AssertionError("constants are simplified away before rendering")


@dataclass(frozen=True)
class Condition:
    """One top-level condition of a filter, in both renderings of one tree: ``param`` for the
    URL of a GET, ``tree`` for the POST body of ``parlant_find``."""

    param: tuple[str, str]
    tree: dict[str, Any]


@dataclass(frozen=True)
class Order:
    """An ordering in both renderings: the ``order=`` value and ``parlant_find``'s terms."""

    param: str
    terms: tuple[dict[str, Any], ...]


def _top(node: _Node) -> tuple[str, str]:
    # A top-level value is taken verbatim by PostgREST (never quoted); only simple paths can
    # be top-level keys, anything else goes into a one-element `or=(…)` tree.
    if isinstance(node, _Leaf) and _is_plain_path(node.path):
        return (node.path, f"{node.op}.{node.raw}")
    if isinstance(node, _InList) and _is_plain_path(node.path):
        negation = "not." if node.negated else ""
        return (node.path, f"{negation}in.({','.join(_element(raw) for raw in node.raws)})")
    if isinstance(node, _Or):
        return ("or", "(" + ",".join(_tree(child) for child in node.children) + ")")
    return ("or", "(" + _tree(node) + ")")


def _is_plain_path(path: str) -> bool:
    return '"' not in path


@dataclass(frozen=True)
class Compiled:
    """A compiled filter: its top-level conditions (ANDed; ``[]``: always true) and whether
    it can match nothing (then ``conditions`` is the one condition ``id is null``)."""

    conditions: list[Condition]
    nothing: bool


def _single(where: Mapping[str, Any]) -> _Node | None:
    """The leaf of ``{field: {"$eq" | "$ne": value}}`` (what the general path simplifies it
    to), without building the tree; None for any other shape."""
    if len(where) != 1:
        return None
    field, spec = next(iter(where.items()))
    if not isinstance(field, str) or field.startswith("$") or not isinstance(spec, Mapping):
        return None
    if len(spec) != 1:
        return None
    op, operand = next(iter(spec.items()))
    return _compare(field, op, operand) if op in ("$eq", "$ne") else None


def compile_filter(where: Mapping[str, Any]) -> Compiled:
    """Translate a Parlant ``Where`` once: its conditions and whether it matches nothing."""
    node = _single(where) if isinstance(where, Mapping) else None
    if node is None:
        node = _simplify(_build(where))
    if node is _TRUE:
        return Compiled([], False)
    nothing = node is _FALSE
    if nothing:
        node = _Leaf("id", "is", "null", quotable=False)
    children = node.children if isinstance(node, _And) else (node,)
    return Compiled([Condition(_top(child), _json(child)) for child in children], nothing)


def compile_where(where: Mapping[str, Any]) -> list[Condition]:
    """Translate a Parlant ``Where`` into conditions that are ANDed (``[]``: always true).

    An always-false filter gives the one condition ``id is null`` (the id is never NULL).
    """
    return compile_filter(where).conditions


def encode_where(where: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Translate a Parlant ``Where`` into PostgREST query parameters (not percent-encoded).

    An always-true filter gives ``[]``; an always-false one gives ``[("id", "is.null")]``.
    """
    return [condition.param for condition in compile_where(where)]


def matches_nothing(where: Mapping[str, Any]) -> bool:
    """True when ``where`` can match no document (e.g. ``$in: []``): no request is needed."""
    return compile_filter(where).nothing


def id_pinned(where: Mapping[str, Any]) -> str | None:
    """The id when ``where`` is exactly ``{"id": {"$eq": <str>}}``, else None."""
    if len(where) != 1 or "id" not in where:
        return None
    spec = where["id"]
    if not isinstance(spec, Mapping) or len(spec) != 1 or "$eq" not in spec:
        return None
    value = spec["$eq"]
    # An id with \u0000 is left to compile_filter, which refuses it.
    return value if isinstance(value, str) and "\x00" not in value else None


def compile_cursor(cursor: Cursor, direction: SortDirection | None) -> Condition:
    """The condition selecting documents strictly after ``cursor`` in ``(creation_utc, id)``."""
    op = "lt" if direction == SortDirection.DESC else "gt"
    created, doc_id = str(cursor.creation_utc), str(cursor.id)
    node = _Or(
        (
            _Leaf("creation_utc", op, created),
            _And((_Leaf("creation_utc", "eq", created), _Leaf("id", op, doc_id))),
        )
    )
    return Condition(_top(node), _json(node))


def encode_cursor(cursor: Cursor, direction: SortDirection | None) -> tuple[str, str]:
    """The ``or=(…)`` parameter selecting documents strictly after ``cursor``."""
    return compile_cursor(cursor, direction).param


def compile_order(
    sort: Sequence[tuple[str, SortDirection]] | None, direction: SortDirection | None = None
) -> Order:
    """The ordering: ``sort`` keys, then the ``(creation_utc, id)`` tiebreak.

    Mirrored fields sort by their column (strings, code-point order) and then by their jsonb
    value (for non-string values); other fields sort by ``data->field`` (numbers numerically).
    """
    terms: list[tuple[str, bool]] = []
    for field, field_direction in sort or ():
        descending = field_direction == SortDirection.DESC
        if field in MIRRORED_COLUMNS:
            terms.append((field, descending))
        terms.append((_json_path(field), descending))
    descending = direction == SortDirection.DESC
    terms += [("creation_utc", descending), ("id", descending)]
    return Order(
        ",".join(f"{path}.{'desc' if desc else 'asc'}" for path, desc in terms),
        tuple({"p": _path_json(path), "desc": desc} for path, desc in terms),
    )


def encode_order(
    sort: Sequence[tuple[str, SortDirection]] | None, direction: SortDirection | None = None
) -> str:
    """The ``order=`` value (see :func:`compile_order`)."""
    return compile_order(sort, direction).param
