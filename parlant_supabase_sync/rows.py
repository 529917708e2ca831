"""Document ↔ table row (pure, no I/O).

A row is the document in ``data`` plus the six mirrored text columns, each holding the
document's top-level value of the same name when it is a ``str`` (else NULL). Reading a row
back returns exactly the document that was written: no extra keys, ``None`` stays ``None``,
nested values intact (JSON arrays come back as lists).

Values jsonb cannot store are refused with :class:`InvalidDocument` before any request, so
nothing is half-written: ``\\u0000`` in strings or keys, NaN/Infinity, non-string keys, and
types JSON has no form for. Numbers must stay above ``-1e131071`` and below ``1e131071`` (the
filter encoder's type boundary, see :mod:`parlant_supabase_sync.filters`; PostgreSQL itself
stops at 131072 digits).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Mapping
from typing import Any, cast

from typing_extensions import get_type_hints

from .errors import InvalidDocument
from .filters import MIRRORED_COLUMNS

__all__ = ["document_to_row", "ensure_is_total", "is_total", "row_to_document", "validate_document"]

_NUMBER_LIMIT = 10**131071
# Cheap pre-check: ints below 2**435000 are far below 10**131071 (≈ 2**435411).
_SAFE_BITS = 435000
# Ints shorter than this always convert to text (Python 3.11+ limits conversions to
# sys.get_int_max_str_digits() digits, 4300 by default, which json.dumps would hit).
_STR_CHECK_BITS = 13000


def _check(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidDocument(
                f"{where} contains \\u0000, which PostgreSQL jsonb cannot store; remove it"
            )
        return
    if isinstance(value, int):
        if value.bit_length() > _SAFE_BITS and abs(value) >= _NUMBER_LIMIT:
            raise InvalidDocument(f"{where} is a number too large for PostgreSQL jsonb")
        if value.bit_length() > _STR_CHECK_BITS:
            try:
                str(value)
            except ValueError as exc:  # Python 3.11+'s int-to-str digit limit
                raise InvalidDocument(f"{where} cannot be written as JSON: {exc}") from None
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidDocument(
                f"{where} is {value!r}; JSON and PostgreSQL jsonb have no NaN or Infinity"
            )
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidDocument(
                    f"{where} has the key {key!r}; JSON object keys must be strings"
                )
            if "\x00" in key:
                raise InvalidDocument(
                    f"{where} has a key containing \\u0000, which PostgreSQL jsonb cannot store"
                )
            _check(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]")
        return
    raise InvalidDocument(
        f"{where} is a {type(value).__name__}, which has no JSON form; "
        "use str, int, float, bool, None, list or dict"
    )


def _plainly_valid(value: Any) -> bool:
    """True when ``value`` is plain JSON that :func:`_check` accepts; False means "let
    ``_check`` decide" (it builds each value's path for the message, which costs)."""
    kind = type(value)
    if kind is str:
        return "\x00" not in value
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or "\x00" in key or not _plainly_valid(item):
                return False
        return True
    if kind is list:
        return all(_plainly_valid(item) for item in value)
    if kind is int:
        return bool(value.bit_length() <= _STR_CHECK_BITS)
    if kind is float:
        return math.isfinite(value)
    return value is None or kind is bool


def validate_document(document: Mapping[str, Any], what: str = "document") -> None:
    """Raise :class:`InvalidDocument` if ``document`` holds a value jsonb cannot store."""
    if not isinstance(document, Mapping):
        raise InvalidDocument(f"a {what} must be a dict, got {type(document).__name__}")
    if not _plainly_valid(document):
        _check(document, what)


def document_to_row(document: Mapping[str, Any]) -> dict[str, Any]:
    """The table row for ``document`` (validated): mirrored columns plus ``data``."""
    validate_document(document)
    row: dict[str, Any] = {}
    for column in MIRRORED_COLUMNS:
        value = document.get(column)
        row[column] = value if isinstance(value, str) else None
    row["data"] = dict(document)
    return row


def row_to_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """The document stored in ``row`` (its ``data`` column)."""
    data = row["data"]
    if not isinstance(data, dict):
        raise InvalidDocument(f"row {row.get('id')!r} holds a non-object document: {data!r}")
    return data


@functools.lru_cache(maxsize=256)
def _required_keys(schema: type[Any]) -> tuple[str, ...]:
    # get_type_hints costs 100+ µs per call; a schema's keys never change.
    return tuple(get_type_hints(schema))


def ensure_is_total(document: Mapping[str, Any], schema: type[Any]) -> None:
    """Raise ``TypeError`` unless ``document`` has every key annotated in ``schema``.

    The same check (and message) as Parlant's ``ensure_is_total``, without importing parlant.
    """
    required_keys = _required_keys(cast(Hashable, schema))
    missing_keys = [key for key in required_keys if key not in document]
    if missing_keys:
        raise TypeError(
            f"Provided TypedDict '{schema.__qualname__}' is missing required keys: "
            f"{missing_keys}. Expected at least the keys: {list(required_keys)}."
        )


def is_total(document: Mapping[str, Any], schema: type[Any]) -> bool:
    """Whether ``document`` has every key annotated in ``schema``."""
    try:
        ensure_is_total(document, schema)
    except TypeError:
        return False
    return True
