"""parlant-contract.md §6 checklist items 1–8: each scenario runs on Parlant's
TransientDocumentDatabase (the oracle) and on the core, and the results must be identical.

Where the adapter deliberately differs (the loader, which Transient never runs; documents that
outlive a process) the test says so and checks the adapter alone.
"""

from __future__ import annotations

from typing import Any

import pytest
from core_helpers import Doc, MakeDb, Oracle, Pair, identity

from parlant_supabase_sync._types import Cursor, ObjectId, SortDirection
from parlant_supabase_sync.errors import (
    DuplicateDocument,
    InvalidDocument,
    SchemaMissing,
)
from parlant_supabase_sync.local import LocalSupabase

ASC, DESC = SortDirection.ASC, SortDirection.DESC


def _doc(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"d{i:03d}", "version": "0.1.0", "creation_utc": f"2024-01-01T00:00:{i:02d}+00:00", **extra}


# 1. Lifecycle ------------------------------------------------------------------------------


def test_get_collection_on_a_missing_collection_raises_value_error(make_db: MakeDb) -> None:
    oracle = Oracle()
    with pytest.raises(ValueError):
        Oracle.call(oracle.db, "get_collection", "nothing", Doc, None)
    db = make_db(("docs",))
    with pytest.raises(ValueError, match="does not exist"):
        db.get_collection("nothing", Doc, identity)


def test_get_or_create_is_idempotent(make_db: MakeDb) -> None:
    db = make_db(("docs",))
    first = db.get_or_create_collection("docs", Doc, identity)
    first.insert_one(_doc(1))
    second = db.get_or_create_collection("docs", Doc, identity)
    assert second.find({}).items == [_doc(1)]


def test_create_collection_returns_an_empty_collection(make_db: MakeDb) -> None:
    oracle = Oracle()
    transient = oracle.collection("docs")
    Oracle.call(transient, "insert_one", _doc(1))
    recreated = Oracle.call(oracle.db, "create_collection", "docs", Doc)
    expected = Oracle.call(recreated, "find", {})

    db = make_db(("docs",))
    db.get_or_create_collection("docs", Doc, identity).insert_one(_doc(1))
    assert db.create_collection("docs", Doc).find({}) == expected
    assert expected.items == []


def test_delete_collection_is_persisted_and_idempotent(make_db: MakeDb) -> None:
    db = make_db(("docs",))
    db.get_or_create_collection("docs", Doc, identity).insert_one(_doc(1))
    db.delete_collection("docs")
    db.delete_collection("docs")
    other = make_db(("docs",), prefix=db.table_prefix, create_tables=False)
    assert other.get_or_create_collection("docs", Doc, identity).find({}).items == []


def test_missing_tables_raise_schema_missing_with_the_command(make_db: MakeDb) -> None:
    db = make_db(("docs",))
    with pytest.raises(SchemaMissing) as caught:
        db.get_or_create_collection("absent", Doc, identity)
    assert "parlant-supabase-sync sql" in str(caught.value)
    assert db.table_for("absent").main in caught.value.tables
    assert db.table_for("absent").failed in caught.value.tables


# 2. Loader (Transient never runs it: checked on the adapter alone) -------------------------


def _seed(stand_in: LocalSupabase, make_db: MakeDb, count: int) -> str:
    db = make_db(("docs",))
    collection = db.create_collection("docs", Doc)
    for i in range(count):
        collection.insert_one(_doc(i, n=i))
    return db.table_prefix


def test_loader_rewrites_only_migrated_documents(
    stand_in: LocalSupabase, make_db: MakeDb
) -> None:
    prefix = _seed(stand_in, make_db, 6)

    def loader(document: dict[str, Any]) -> dict[str, Any] | None:
        if document["n"] % 3 == 0:
            return {**document, "version": "0.2.0", "session_id": f"s{document['n']}"}
        if document["n"] == 4:
            return None
        if document["n"] == 5:
            raise KeyError("no converter for this version")
        return document

    db = make_db(prefix=prefix, create_tables=False)
    with stand_in.requests.capture() as seen:
        collection = db.get_or_create_collection("docs", Doc, loader)
    # The tables were checked when seeding (cached per process): 1 page, 1 upsert of the 2
    # migrated, then 1 move (copy and delete in one statement) of the 2 failed.
    assert len(seen) == 3
    assert [d["n"] for d in collection.find({}).items] == [0, 1, 2, 3]
    assert collection.find_one({"id": {"$eq": "d003"}}) == {
        **_doc(3, n=3),
        "version": "0.2.0",
        "session_id": "s3",
    }
    table = db.table_for("docs")
    assert stand_in.query(f'select version, session_id from "{table.main}" where id = %s', ["d003"]) == [
        ("0.2.0", "s3")
    ]
    failed = stand_in.query(f'select id, data from "{table.failed}" order by id')
    assert failed == [("d004", _doc(4, n=4)), ("d005", _doc(5, n=5))]


def test_loader_runs_once_per_process(stand_in: LocalSupabase, make_db: MakeDb) -> None:
    prefix = _seed(stand_in, make_db, 3)
    calls: list[str] = []

    def loader(document: dict[str, Any]) -> dict[str, Any]:
        calls.append(document["id"])
        return document

    make_db(prefix=prefix, create_tables=False).get_or_create_collection("docs", Doc, loader)
    with stand_in.requests.capture() as seen:
        make_db(prefix=prefix, create_tables=False).get_or_create_collection("docs", Doc, loader)
    assert calls == ["d000", "d001", "d002"]
    assert len(seen) == 0


# 3. insert/find round trip -----------------------------------------------------------------

STORE_DOCUMENTS = [
    {
        "id": "sess1", "version": "0.9.0", "creation_utc": "2024-05-01T10:00:00.123456+00:00",
        "customer_id": "c1", "agent_id": "a1", "mode": "auto", "title": None,
        "consumption_offsets": {"client": 3}, "agent_states": [{"applied": ["g1"], "x": 1.5}],
        "metadata": {}, "labels": ["vip", "ünï☃"],
    },
    {
        "id": "evt1", "version": "0.9.0", "creation_utc": "2024-05-01T10:00:01+00:00",
        "session_id": "sess1", "source": "customer", "kind": "message", "offset": 0,
        "trace_id": "t", "data": {"message": "hi, (there) \"you\"", "participant": {"display_name": "Ann"}},
        "metadata": None, "deleted": False,
    },
    {
        "id": "cust1", "version": "0.1.0", "creation_utc": "2024-05-01T10:00:02+00:00",
        "name": "Alice", "extra": {"email": "a@b.c", "": ""},
    },
    {
        "id": "val1", "version": "0.3.0", "creation_utc": "2024-05-01T10:00:03+00:00",
        "last_modified": "x", "variable_id": "v1", "key": "DEFAULT", "data": [1, 2.25, -3, True, None],
    },
]


def test_store_documents_round_trip_exactly(pair: Pair) -> None:
    pair.insert(*STORE_DOCUMENTS)
    result = pair.same("find", {})
    assert result.items == STORE_DOCUMENTS
    for document in STORE_DOCUMENTS:
        assert pair.same("find_one", {"id": {"$eq": document["id"]}}) == document


def test_nul_and_nan_are_refused_before_any_request(
    pair: Pair, stand_in: LocalSupabase
) -> None:
    with stand_in.requests.capture() as seen:
        for bad in ({"a": "x\x00"}, {"a": float("nan")}, {"a": {"b\x00": 1}}):
            with pytest.raises(InvalidDocument):
                pair.core.insert_one({**_doc(1), **bad})
            with pytest.raises(InvalidDocument):
                pair.core.update_one({"id": {"$eq": "d001"}}, bad)
    assert len(seen) == 0


def test_insert_requires_a_total_document_like_transient(pair: Pair) -> None:
    with pytest.raises(TypeError):
        Oracle.call(pair.oracle, "insert_one", {"id": "x"})
    with pytest.raises(TypeError):
        pair.core.insert_one({"id": "x"})


def test_duplicate_ids_raise_duplicate_document(pair: Pair) -> None:
    pair.core.insert_one(_doc(1))
    with pytest.raises(DuplicateDocument) as caught:
        pair.core.insert_one(_doc(1, other=True))
    assert isinstance(caught.value, ValueError)


# 4. find -----------------------------------------------------------------------------------


def _ordering_documents() -> list[dict[str, Any]]:
    same = "2024-01-01T00:00:00+00:00"
    return [
        {"id": "b", "version": "1", "creation_utc": same},
        {"id": "B", "version": "1", "creation_utc": same},
        {"id": "a", "version": "1", "creation_utc": same},
        {"id": "0", "version": "1", "creation_utc": same},
        {"id": "z", "version": "1", "creation_utc": "2024-01-01T00:00:00.500000+00:00"},
        {"id": "y", "version": "1", "creation_utc": "2023-12-31T23:59:59+00:00"},
        {"id": "x", "version": "1", "creation_utc": "2024-01-01T00:00:01+00:00"},
    ]


@pytest.mark.parametrize("direction", [None, ASC, DESC])
@pytest.mark.parametrize("limit", [None, 0, 1, 3, 7, 8])
def test_find_order_limit_total_and_cursor_match_transient(
    pair: Pair, direction: SortDirection | None, limit: int | None
) -> None:
    pair.insert(*_ordering_documents())
    result = pair.same("find", {}, limit=limit, sort_direction=direction)
    pages = 0
    while result.has_more and result.next_cursor is not None and pages < 10:
        result = pair.same(
            "find", {}, limit=limit, cursor=result.next_cursor, sort_direction=direction
        )
        pages += 1


def test_multi_page_cursor_with_or_filter(pair: Pair) -> None:
    pair.insert(*[_doc(i, tag=f"t{i % 3}") for i in range(10)])
    where = {"$or": [{"tag": {"$eq": "t0"}}, {"tag": {"$eq": "t1"}}]}
    seen: list[str] = []
    result = pair.same("find", where, limit=2)
    seen += [d["id"] for d in result.items]
    while result.has_more:
        result = pair.same("find", where, limit=2, cursor=result.next_cursor)
        seen += [d["id"] for d in result.items]
    assert len(seen) == len(set(seen)) == 7


def test_cursor_need_not_exist_and_values_are_untrusted(pair: Pair) -> None:
    pair.insert(*_ordering_documents())
    for created, doc_id in [
        ("2024-01-01T00:00:00+00:00", "a"),
        ("2024-01-01T00:00:00+00:00", "a,b)(\"q\\"),
        ("2024,)(", "x.y:z+"),
        ("", ""),
    ]:
        for direction in (ASC, DESC):
            pair.same(
                "find", {}, limit=2, cursor=Cursor(created, ObjectId(doc_id)), sort_direction=direction
            )


# 5. filters --------------------------------------------------------------------------------


def _events() -> list[dict[str, Any]]:
    return [
        _doc(
            i,
            session_id="s1" if i < 8 else "s2",
            source="customer" if i % 2 else "ai_agent",
            kind="message" if i % 3 else "status",
            offset=i,
            progress=i / 4,
            deleted=i in (2, 5),
            trace_id=f"tr{i % 4}",
        )
        for i in range(12)
    ]


FILTERS: list[dict[str, Any]] = [
    {},
    {"offset": {"$gte": 10}},
    {"offset": {"$gte": 9}},
    {"offset": {"$gt": 2, "$lt": 6}},
    {"offset": {"$lte": 3}},
    {"offset": {"$ne": 4}},
    {"offset": {"$eq": 4.0}},
    {"progress": {"$gt": 1.25}},
    {"progress": {"$in": [0.5, 2, 100]}},
    {"deleted": {"$eq": False}},
    {"deleted": {"$ne": True}},
    {"kind": {"$eq": "message"}},
    {"kind": {"$gt": "r"}},
    {"kind": {"$lte": "message"}},
    {"id": {"$gt": "d005"}},
    {"id": {"$in": ["d001", "d003", "nope"]}},
    {"id": {"$nin": ["d001", "d003"]}},
    {"id": {"$in": []}},
    {"id": {"$nin": []}},
    {"trace_id": {"$nin": ["tr0", "tr1"]}},
    {"session_id": {"$eq": "s1"}, "kind": {"$eq": "message"}, "deleted": {"$eq": False}},
    {"$or": [{"session_id": {"$eq": "s1"}, "kind": {"$eq": "status"}}, {"offset": {"$gte": 10}}]},
    {"$and": [{"$or": [{"kind": {"$eq": "status"}}, {"source": {"$eq": "customer"}}]}, {"$or": [{"offset": {"$lt": 3}}, {"offset": {"$gt": 9}}]}]},
    {"$and": []},
    {"$or": []},
    {"$and": [{"id": {"$ne": f"d{i:03d}"}} for i in range(0, 12, 2)]},
    {"$or": [{"id": {"$eq": f"d{i:03d}"}} for i in range(0, 12, 3)]},
    {"$and": [{"id": {"$ne": f"x{i}"}} for i in range(500)]},
    {"$or": [{"offset": {"$eq": 1}}, {"$and": [{"offset": {"$gte": 5}}, {"$or": [{"deleted": {"$eq": True}}, {"offset": {"$eq": 11}}]}]}]},
]


@pytest.mark.parametrize("where", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
def test_filters_match_transient(pair: Pair, where: dict[str, Any]) -> None:
    pair.insert(*_events())
    pair.same("find", where)
    pair.same("find", where, limit=2, sort_direction=DESC)
    assert pair.core.count(where) == len(Oracle.call(pair.oracle, "find", where).items)


def test_offsets_compare_as_numbers(pair: Pair) -> None:
    pair.insert(*_events())
    result = pair.same("find", {"session_id": {"$eq": "s2"}, "offset": {"$gte": 10}})
    assert [d["offset"] for d in result.items] == [10, 11]
    result = pair.same("find", {"offset": {"$gte": 9}})
    assert [d["offset"] for d in result.items] == [9, 10, 11]


# 6. find_one -------------------------------------------------------------------------------


def test_find_one_sorts_numbers_numerically(pair: Pair) -> None:
    pair.insert(*[_doc(i, session_id="s", offset=o) for i, o in enumerate([9, 11, 10, 2])])
    assert pair.same("find_one", {"session_id": {"$eq": "s"}}, sort=[("offset", DESC)])["offset"] == 11
    assert pair.same("find_one", {"session_id": {"$eq": "s"}}, sort=[("offset", ASC)])["offset"] == 2


def test_find_one_multi_key_sort_and_no_match(pair: Pair) -> None:
    pair.insert(*[_doc(i, a=i % 2, b=i % 3, name=f"n{i}") for i in range(9)])
    pair.same("find_one", {}, sort=[("a", DESC), ("b", ASC)])
    pair.same("find_one", {}, sort=[("a", ASC), ("b", DESC)])
    pair.same("find_one", {"a": {"$eq": 1}}, sort=[("b", DESC), ("name", DESC)])
    assert pair.same("find_one", {"a": {"$eq": 7}}) is None


# 7. update_one -----------------------------------------------------------------------------


def test_update_merges_top_level_keys(pair: Pair) -> None:
    pair.insert(_doc(1, keep=1, nested={"a": 1, "b": 2}, title="t"), _doc(2))
    result = pair.same("update_one", {"id": {"$eq": "d001"}}, {"nested": {"c": 3}, "title": None, "data": {"x": [1]}})
    assert result.updated_document["keep"] == 1
    assert result.updated_document["nested"] == {"c": 3}
    pair.same("find", {})


def test_update_can_change_id_creation_utc_and_version(
    pair: Pair, stand_in: LocalSupabase
) -> None:
    pair.insert(_doc(1, session_id="s"))
    pair.same(
        "update_one",
        {"id": {"$eq": "d001"}},
        {"id": "new", "creation_utc": "2030", "version": "9", "session_id": 5},
    )
    pair.same("find", {"id": {"$eq": "new"}})
    pair.same("find", {"id": {"$eq": "d001"}})
    table = pair.core.tables.main
    assert stand_in.query(f'select id, creation_utc, version, session_id from "{table}"') == [
        ("new", "2030", "9", None)
    ]


def test_update_hit_miss_noop_and_first_match_only(pair: Pair) -> None:
    pair.insert(*[_doc(i, group="g") for i in range(3)])
    hit = pair.same("update_one", {"group": {"$eq": "g"}}, {"touched": True})
    assert (hit.matched_count, hit.modified_count) == (1, 1)
    miss = pair.same("update_one", {"group": {"$eq": "nope"}}, {"touched": True})
    assert (miss.matched_count, miss.updated_document) == (0, None)
    noop = pair.same("update_one", {"id": {"$eq": "d001"}}, {"group": "g"})
    assert noop.matched_count == 1
    pair.same("find", {})


def test_upsert_inserts_on_miss_and_updates_on_hit(pair: Pair) -> None:
    pair.insert(_doc(1, variable_id="v", key="k"))
    where = {"variable_id": {"$eq": "v"}, "key": {"$eq": "k"}}
    updated = pair.same("update_one", where, _doc(5, variable_id="v", key="k", value=1), upsert=True)
    assert updated.matched_count == 1
    inserted = pair.same(
        "update_one", {"variable_id": {"$eq": "w"}}, _doc(6, variable_id="w", key="k"), upsert=True
    )
    assert (inserted.matched_count, inserted.modified_count) == (0, 0)
    pair.same("find", {})
    with pytest.raises(TypeError):
        pair.core.update_one({"id": {"$eq": "none"}}, {"id": "partial"}, upsert=True)


# 8. delete_one -----------------------------------------------------------------------------


def test_delete_one_returns_the_complete_document_and_misses_cleanly(pair: Pair) -> None:
    pair.insert(*[_doc(i, group="g", nested={"a": [i]}) for i in range(3)])
    deleted = pair.same("delete_one", {"group": {"$eq": "g"}})
    assert deleted.deleted_document == _doc(0, group="g", nested={"a": [0]})
    pair.same("delete_one", {"id": {"$eq": "d002"}})
    miss = pair.same("delete_one", {"id": {"$eq": "d002"}})
    assert (miss.deleted_count, miss.deleted_document) == (0, None)
    pair.same("find", {})
