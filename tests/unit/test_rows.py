"""rows.py: document ↔ row and value validation."""

from __future__ import annotations

from typing import Any

import pytest

from parlant_supabase_sync.errors import InvalidDocument
from parlant_supabase_sync.rows import (
    document_to_row,
    row_to_document,
    validate_document,
)


def test_row_mirrors_top_level_string_values_only() -> None:
    doc = {"id": "e1", "version": "0.9.0", "creation_utc": "2024", "session_id": 5, "data": {"x": 1}}
    row = document_to_row(doc)
    assert row == {
        "id": "e1",
        "version": "0.9.0",
        "creation_utc": "2024",
        "session_id": None,
        "customer_id": None,
        "agent_id": None,
        "data": doc,
    }


def test_reading_a_row_returns_exactly_the_document() -> None:
    doc: dict[str, Any] = {
        "id": "x",
        "title": None,
        "nested": {"a": [1, 2.5, True, None, {"b": "ü☃"}]},
        "data": {"kind": "message"},
    }
    assert row_to_document(document_to_row(doc)) == doc


@pytest.mark.parametrize(
    "doc",
    [
        {"id": "a\x00"},
        {"id": "a", "nested": {"k\x00": 1}},
        {"id": "a", "x": float("nan")},
        {"id": "a", "x": [float("inf")]},
        {"id": "a", "x": {1: "int key"}},
        {"id": "a", "x": {1, 2}},
        {"id": "a", "x": -(10**131071)},
    ],
)
def test_values_jsonb_cannot_store_are_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(InvalidDocument):
        document_to_row(doc)


def test_large_but_storable_numbers_are_accepted() -> None:
    validate_document({"x": 10**4000, "y": -1.7976931348623157e308})


def test_ints_python_cannot_print_are_refused_before_any_request() -> None:
    import sys

    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    if not limit:
        pytest.skip("this Python has no int-to-str digit limit")
    with pytest.raises(InvalidDocument):
        validate_document({"x": 10 ** (limit + 10)})


def test_a_refusal_names_the_value_deep_inside_the_document() -> None:
    with pytest.raises(InvalidDocument, match=r"document\['a'\]\[1\]\['b'\] contains \\u0000"):
        validate_document({"a": [1, {"b": "x\x00"}]})


def test_tuples_and_other_mappings_are_accepted_like_lists_and_dicts() -> None:
    from collections import OrderedDict

    validate_document({"t": (1, "a", (None, True)), "m": OrderedDict(k=[1.5])})
