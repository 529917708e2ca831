"""The adapter's JSON-typed filter semantics where Transient raises or follows Python
(documented differences in filters.py): checked on the adapter alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from core_helpers import Doc, MakeDb, identity, unique_prefix

from parlant_supabase_sync._types import SortDirection
from parlant_supabase_sync.core import SyncDocumentCollection, SyncDocumentDatabase
from parlant_supabase_sync.ddl import generate_schema
from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.settings import SupabaseSettings

VALUES: dict[str, Any] = {
    "int5": 5,
    "float": 2.5,
    "huge_negative": -(10**4000),
    "str5": "5",
    "str_abc": "abc",
    "empty": "",
    "true": True,
    "false": False,
    "null": None,
    "list": [1],
    "object": {"a": 1},
}


@pytest.fixture(scope="module")
def typed(stand_in: LocalSupabase) -> Iterator[SyncDocumentCollection]:
    prefix = unique_prefix()
    stand_in.execute_sql(generate_schema({prefix: ("docs",)}))
    settings = SupabaseSettings(url=stand_in.url, key=stand_in.secret_key)
    with SyncDocumentDatabase(settings, table_prefix=prefix) as db:
        collection = db.get_or_create_collection("docs", Doc, identity)
        for name, value in VALUES.items():
            collection.insert_one({"id": name, "version": "1", "creation_utc": name, "v": value})
        collection.insert_one({"id": "missing", "version": "1", "creation_utc": "missing"})
        yield collection


def _ids(collection: SyncDocumentCollection, where: dict[str, Any]) -> set[str]:
    return {d["id"] for d in collection.find(where).items}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"v": {"$gt": 1}}, {"int5", "float"}),
        ({"v": {"$lt": 1}}, {"huge_negative"}),
        ({"v": {"$lte": 5}}, {"int5", "float", "huge_negative"}),
        ({"v": {"$gte": ""}}, {"str5", "str_abc", "empty"}),
        ({"v": {"$lt": "zzz"}}, {"str5", "str_abc", "empty"}),
        ({"v": {"$gt": "4"}}, {"str5", "str_abc"}),
        ({"v": {"$gt": False}}, {"true"}),
        ({"v": {"$lte": True}}, {"true", "false"}),
        ({"v": {"$eq": 1}}, set()),
        ({"v": {"$eq": True}}, {"true"}),
        ({"v": {"$eq": 0}}, set()),
        ({"v": {"$eq": 5.0}}, {"int5"}),
        ({"v": {"$eq": None}}, {"null"}),
        ({"v": {"$in": [5, "abc", False]}}, {"int5", "str_abc", "false"}),
        ({"v": {"$in": [""]}}, {"empty"}),
        ({"v": {"$in": ["", "5"]}}, {"empty", "str5"}),
        ({"v": {"$ne": 5}}, set(VALUES) - {"int5"} | {"missing"}),
        ({"v": {"$nin": [5, "5", ""]}}, set(VALUES) - {"int5", "str5", "empty"} | {"missing"}),
        ({"v": {"$nin": []}}, set(VALUES) | {"missing"}),
        ({"v": {"$in": []}}, set()),
        ({"nothere": {"$ne": "x"}}, set(VALUES) | {"missing"}),
        ({"nothere": {"$eq": "x"}}, set()),
        ({"$or": [{"v": {"$gt": 1}}, {"v": {"$eq": "abc"}}], "id": {"$ne": "float"}}, {"int5", "str_abc"}),
    ],
)
def test_comparisons_only_match_the_operand_json_type(
    typed: SyncDocumentCollection, where: dict[str, Any], expected: set[str]
) -> None:
    assert _ids(typed, where) == expected


def test_awkward_field_names(make_db: MakeDb) -> None:
    collection = make_db().get_or_create_collection("docs", Doc, identity)
    for i in range(3):
        collection.insert_one(
            {"id": f"d{i}", "version": "1", "creation_utc": f"{i}",
             "a.b": i, "1": f"x{i}", "first-name": "ann" if i else "bob", "with space": i % 2}
        )
    assert _ids(collection, {"a.b": {"$gte": 1}}) == {"d1", "d2"}
    assert _ids(collection, {"1": {"$eq": "x2"}}) == {"d2"}
    assert _ids(collection, {"first-name": {"$eq": "bob"}}) == {"d0"}
    assert _ids(collection, {"with space": {"$eq": 1}}) == {"d1"}
    top = collection.find_one({}, sort=[("a.b", SortDirection.DESC)])
    assert top is not None and top["id"] == "d2"
