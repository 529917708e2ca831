"""filters.py: the Where → PostgREST translation (pure; behaviour against a server is in tests/core)."""

from __future__ import annotations

import pytest

from parlant_supabase_sync._types import Cursor, ObjectId, SortDirection
from parlant_supabase_sync.errors import UnsupportedFilter
from parlant_supabase_sync.filters import (
    NUMBER_FLOOR,
    encode_cursor,
    encode_order,
    encode_where,
    id_pinned,
    matches_nothing,
    quote,
)


def test_quote_escapes_backslash_and_double_quote_only() -> None:
    assert quote('a,b (c).d:"e"\\f*%+ ü') == '"a,b (c).d:\\"e\\"\\\\f*%+ ü"'
    assert quote("") == '""'


def test_empty_filter_and_empty_and_match_everything() -> None:
    assert encode_where({}) == []
    assert encode_where({"$and": []}) == []


def test_empty_or_and_empty_in_match_nothing() -> None:
    assert encode_where({"$or": []}) == [("id", "is.null")]
    assert encode_where({"a": {"$in": []}}) == [("id", "is.null")]
    assert matches_nothing({"a": {"$in": []}})
    assert not matches_nothing({"a": {"$nin": []}})
    assert encode_where({"a": {"$nin": []}}) == []


def test_mirrored_column_with_str_operand_uses_the_column_unquoted_at_top_level() -> None:
    assert encode_where({"id": {"$eq": "a,b)(\"x"}}) == [("id", 'eq.a,b)("x')]
    assert encode_where({"session_id": {"$ne": "s"}}) == [("session_id", "isdistinct.s")]
    assert encode_where({"creation_utc": {"$gte": "2024"}}) == [("creation_utc", "gte.2024")]


def test_jsonb_field_with_str_operand_is_a_json_string_bounded_to_strings() -> None:
    assert encode_where({"kind": {"$eq": "message"}}) == [("data->kind", 'eq."message"')]
    assert encode_where({"kind": {"$gt": "m"}}) == [
        ("data->kind", 'gt."m"'),
        ("data->kind", f"lt.{NUMBER_FLOOR}"),
    ]
    assert encode_where({"kind": {"$lt": "m"}}) == [
        ("data->kind", 'lt."m"'),
        ("data->kind", 'gte.""'),
    ]


def test_numbers_are_bounded_to_the_number_bucket() -> None:
    assert encode_where({"offset": {"$gte": 10}}) == [
        ("data->offset", "gte.10"),
        ("data->offset", "lt.false"),
    ]
    assert encode_where({"offset": {"$lt": 2.5}}) == [
        ("data->offset", "lt.2.5"),
        ("data->offset", f"gte.{NUMBER_FLOOR}"),
    ]


def test_booleans_are_json_booleans_never_numbers() -> None:
    assert encode_where({"deleted": {"$eq": False}}) == [("data->deleted", "eq.false")]
    assert encode_where({"deleted": {"$ne": True}}) == [("data->deleted", "isdistinct.true")]
    assert encode_where({"flag": {"$gt": False}}) == [
        ("data->flag", "gt.false"),
        ("data->flag", "lte.true"),
    ]


def test_mirrored_field_with_non_str_operand_goes_to_jsonb() -> None:
    assert encode_where({"id": {"$eq": 5}}) == [("data->id", "eq.5")]


def test_several_operators_on_one_field_are_anded() -> None:
    assert encode_where({"id": {"$gt": "a", "$lt": "c"}}) == [("id", "gt.a"), ("id", "lt.c")]


def test_or_is_a_quoted_logic_tree() -> None:
    params = encode_where({"$or": [{"kind": {"$eq": "a,b"}}, {"offset": {"$gt": 1}}]})
    assert params == [
        ("or", '(data->kind.eq."\\"a,b\\"",and(data->offset.gt."1",data->offset.lt."false"))')
    ]


def test_or_branch_with_several_fields_is_an_and() -> None:
    params = encode_where(
        {"$or": [{"session_id": {"$eq": "s"}, "kind": {"$eq": "k"}}, {"id": {"$eq": "x"}}]}
    )
    assert params == [("or", '(and(session_id.eq."s",data->kind.eq."\\"k\\""),id.eq."x")')]


def test_in_lists_quote_every_element_but_plain_words() -> None:
    assert encode_where({"id": {"$in": ["a", "b,c", 'd")', "null", "x y", "NULL"]}}) == [
        ("id", 'in.(a,"b,c","d\\")","null","x y","NULL")')
    ]


def test_in_with_one_element_is_eq() -> None:
    assert encode_where({"id": {"$in": ["a"]}}) == [("id", "eq.a")]


def test_in_never_puts_a_lone_empty_string_in_a_list() -> None:
    assert encode_where({"id": {"$in": ["", "a", "b"]}}) == [
        ("or", '(id.eq."",id.in.(a,b))')
    ]
    assert encode_where({"id": {"$in": [""]}}) == [("id", "eq.")]


def test_nin_keeps_missing_values() -> None:
    assert encode_where({"session_id": {"$nin": ["a", "b"]}}) == [
        ("or", '(session_id.not.in.(a,b),session_id.is.null)')
    ]
    # `id` is the primary key, never NULL.
    assert encode_where({"id": {"$nin": ["a", "b"]}}) == [("id", "not.in.(a,b)")]
    assert encode_where({"id": {"$nin": ["a"]}}) == [("id", "isdistinct.a")]


def test_in_with_mixed_types_splits_column_and_jsonb() -> None:
    assert encode_where({"version": {"$in": ["1", 1, True]}}) == [
        ("or", '(version.eq."1",data->version.in.(1,true))')
    ]


def test_and_of_ne_on_one_field_collapses_into_not_in() -> None:
    ids = [f"id{i}" for i in range(500)]
    params = encode_where({"$and": [{"id": {"$ne": i}} for i in ids]})
    assert len(params) == 1
    assert params == [("id", "not.in.(" + ",".join(ids) + ")")]


def test_or_of_eq_on_one_field_collapses_into_in() -> None:
    params = encode_where({"$or": [{"tag_id": {"$eq": f"t{i}"}} for i in range(300)]})
    assert len(params) == 1
    key, value = params[0]
    assert key == "data->tag_id"
    assert value.startswith('in.("\\"t0\\"","\\"t1\\"",')


def test_nested_logic_to_any_depth() -> None:
    where: dict[str, object] = {"a": {"$eq": 1}}
    for _ in range(30):
        where = {"$or": [{"$and": [where, {"b": {"$ne": 2}}]}, {"c": {"$eq": 3}}]}
    params = encode_where(where)
    assert len(params) == 1 and params[0][0] == "or"
    assert params[0][1].count("(") == params[0][1].count(")")


def test_fields_mixed_with_logical_keys_are_all_anded() -> None:
    assert encode_where({"$or": [{"a": {"$eq": 1}}, {"b": {"$eq": 2}}], "c": {"$eq": 3}}) == [
        ("or", '(data->a.eq."1",data->b.eq."2")'),
        ("data->c", "eq.3"),
    ]


def test_awkward_field_names_are_quoted_inside_a_tree() -> None:
    assert encode_where({"a.b": {"$eq": 1}}) == [("or", '(data->"a.b".eq."1")')]


@pytest.mark.parametrize(
    "where",
    [
        {"a": {"$exists": True}},
        {"a": 1},
        {"$nor": []},
        {"a": {"$in": "abc"}},
        {"a": {"$eq": [1]}},
        {"a": {"$eq": float("nan")}},
        {"a": {"$gt": None}},
        {"a": {"$eq": "x\x00"}},
        {"$or": {"a": {"$eq": 1}}},
    ],
)
def test_unsupported_filters_raise_unsupported_filter(where: dict[str, object]) -> None:
    with pytest.raises(UnsupportedFilter):
        encode_where(where)
    assert issubclass(UnsupportedFilter, ValueError)


def test_eq_none_matches_json_null() -> None:
    assert encode_where({"title": {"$eq": None}}) == [("data->title", "eq.null")]


def test_cursor_values_are_quoted() -> None:
    cursor = Cursor(creation_utc='2024-01-01T00:00:00+00:00,)"', id=ObjectId("a(b"))
    assert encode_cursor(cursor, None) == (
        "or",
        (
            '(creation_utc.gt."2024-01-01T00:00:00+00:00,)\\"",'
            'and(creation_utc.eq."2024-01-01T00:00:00+00:00,)\\"",id.gt."a(b"))'
        ),
    )
    assert encode_cursor(cursor, SortDirection.DESC)[1].startswith("(creation_utc.lt.")


def test_order_defaults_to_creation_utc_then_id() -> None:
    assert encode_order(None) == "creation_utc.asc,id.asc"
    assert encode_order(None, SortDirection.DESC) == "creation_utc.desc,id.desc"


def test_order_on_fields() -> None:
    assert encode_order([("offset", SortDirection.DESC), ("session_id", SortDirection.ASC)]) == (
        "data->offset.desc,session_id.asc,data->session_id.asc,creation_utc.asc,id.asc"
    )


def test_id_pinned_only_for_exact_id_equality() -> None:
    assert id_pinned({"id": {"$eq": "x"}}) == "x"
    assert id_pinned({"id": {"$eq": "x"}, "a": {"$eq": 1}}) is None
    assert id_pinned({"id": {"$ne": "x"}}) is None
    assert id_pinned({"id": {"$eq": 1}}) is None
