"""Round trips per operation, counted in the stand-in's request log; paging past max-rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from core_helpers import Doc, MakeDb, identity

from parlant_supabase_sync._types import SortDirection
from parlant_supabase_sync.core import SyncDocumentCollection
from parlant_supabase_sync.local import LocalSupabase


def _doc(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"d{i:05d}", "version": "1", "creation_utc": f"2024-01-01T{i:08d}", **extra}


@pytest.fixture
def docs(make_db: MakeDb) -> SyncDocumentCollection:
    collection = make_db().get_or_create_collection("docs", Doc, identity)
    for i in range(5):
        collection.insert_one(_doc(i, group="g", n=i))
    return collection


def _requests(stand_in: LocalSupabase, call: Callable[[], Any]) -> int:
    with stand_in.requests.capture() as seen:
        call()
    return len(seen)


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (lambda c: c.find_one({"id": {"$eq": "d00001"}}), 1),
        (lambda c: c.find_one({"group": {"$eq": "g"}}, sort=[("n", SortDirection.DESC)]), 1),
        (lambda c: c.find({"group": {"$eq": "g"}}), 1),
        (lambda c: c.find({"group": {"$eq": "g"}}, limit=2), 1),
        (lambda c: c.find({"group": {"$eq": "g"}}, limit=0), 1),
        (lambda c: c.find({"id": {"$in": []}}), 0),
        (lambda c: c.count({"group": {"$eq": "g"}}), 1),
        (lambda c: c.insert_one(_doc(99)), 1),
        (lambda c: c.update_one({"id": {"$eq": "d00001"}}, {"x": 1}), 1),
        (lambda c: c.update_one({"id": {"$eq": "missing"}}, {"x": 1}), 1),
        (lambda c: c.update_one({"group": {"$eq": "g"}}, {"x": 1}), 2),
        (lambda c: c.update_one({"group": {"$eq": "none"}}, {"x": 1}), 1),
        (lambda c: c.update_one({"group": {"$eq": "none"}}, _doc(98), upsert=True), 2),
        (lambda c: c.update_one({"id": {"$eq": "d00098"}}, _doc(98), upsert=True), 1),
        (lambda c: c.delete_one({"id": {"$eq": "d00002"}}), 1),
        (lambda c: c.delete_one({"group": {"$eq": "g"}}), 2),
        (lambda c: c.ensure_indexes([]), 0),
    ],
)
def test_requests_per_operation(
    stand_in: LocalSupabase,
    docs: SyncDocumentCollection,
    operation: Callable[[SyncDocumentCollection], Any],
    expected: int,
) -> None:
    assert _requests(stand_in, lambda: operation(docs)) == expected


@pytest.mark.parametrize(
    ("operation", "query"),
    [
        # At most one row matches an id: no order, no limit.
        (lambda c: c.find_one({"id": {"$eq": "d00001"}}), "select=data&id=eq.d00001"),
        (
            lambda c: c.find_one({"group": {"$eq": "g"}}),
            "select=data&data-%3Egroup=eq.%22g%22&order=creation_utc.asc%2Cid.asc&limit=1",
        ),
        # An order cannot change a count.
        (
            lambda c: c.count({"group": {"$eq": "g"}}),
            "select=id&data-%3Egroup=eq.%22g%22&limit=0",
        ),
    ],
)
def test_reads_send_only_the_parameters_they_need(
    stand_in: LocalSupabase,
    docs: SyncDocumentCollection,
    operation: Callable[[SyncDocumentCollection], Any],
    query: str,
) -> None:
    with stand_in.requests.capture() as seen:
        operation(docs)
    assert [entry.query for entry in seen] == [query]


def test_create_and_delete_collection_requests(stand_in: LocalSupabase, make_db: MakeDb) -> None:
    db = make_db(("docs",))
    db.get_or_create_collection("docs", Doc, identity)
    assert _requests(stand_in, lambda: db.create_collection("docs", Doc)) == 1
    assert _requests(stand_in, lambda: db.delete_collection("docs")) == 2  # main + failed


def test_collection_open_checks_tables_at_most_once_per_process(
    stand_in: LocalSupabase, make_db: MakeDb
) -> None:
    db = make_db(("docs", "metadata"))
    assert _requests(stand_in, lambda: db.get_or_create_collection("metadata", Doc, identity)) == 2
    assert _requests(stand_in, lambda: db.get_or_create_collection("metadata", Doc, identity)) == 0
    again = make_db(prefix=db.table_prefix, create_tables=False)
    assert _requests(stand_in, lambda: again.get_collection("metadata", Doc, identity)) == 0


def test_request_stats_count_requests_and_time_per_operation(
    docs: SyncDocumentCollection, make_db: MakeDb
) -> None:
    db = make_db()
    collection = db.get_or_create_collection("docs", Doc, identity)
    collection.insert_one(_doc(1))
    collection.find({})
    stats = db.stats.snapshot()
    assert stats["insert_one"].calls == 1 and stats["insert_one"].requests == 1
    assert stats["find"].requests == 1 and stats["find"].seconds > 0
    assert stats["get_or_create_collection"].requests == 2  # schema report + loader page
    assert db.request_count == 4


def _fill(stand_in: LocalSupabase, collection: SyncDocumentCollection, count: int) -> None:
    # Bulk rows straight into PostgreSQL: the paging under test is the reading side.
    table = collection.tables.main
    stand_in.execute_sql(
        f"""insert into "{table}" (id, version, creation_utc, data)
        select 'd' || lpad(i::text, 5, '0'), '1', '2024-01-01T' || lpad((i / 3)::text, 8, '0'),
               jsonb_build_object('id', 'd' || lpad(i::text, 5, '0'), 'version', '1',
                                  'creation_utc', '2024-01-01T' || lpad((i / 3)::text, 8, '0'),
                                  'n', i)
        from generate_series(0, {count - 1}) as i"""
    )


def test_find_without_limit_returns_every_match_past_the_server_cap(
    stand_in: LocalSupabase, make_db: MakeDb
) -> None:
    collection = make_db(page_size=1000).get_or_create_collection("docs", Doc, identity)
    _fill(stand_in, collection, 2500)
    with stand_in.requests.capture() as seen:
        result = collection.find({})
    assert len(seen) == 3  # ⌈2500 / 1000⌉
    assert [d["n"] for d in result.items] == list(range(2500))
    assert (result.total_count, result.has_more) == (2500, False)
    descending = collection.find({"n": {"$gte": 100}}, sort_direction=SortDirection.DESC)
    assert [d["n"] for d in descending.items] == list(range(2499, 99, -1))


def test_paging_survives_a_cap_below_the_page_size(
    stand_in: LocalSupabase, make_db: MakeDb, max_rows: Callable[[int | None], None]
) -> None:
    collection = make_db(page_size=50).get_or_create_collection("docs", Doc, identity)
    _fill(stand_in, collection, 60)
    max_rows(7)
    with stand_in.requests.capture() as seen:
        result = collection.find({})
    assert [d["n"] for d in result.items] == list(range(60))
    assert len(seen) == 9  # ⌈60 / 7⌉: the cap, not the page size, sets the count
    limited = collection.find({}, limit=20)
    assert [d["n"] for d in limited.items] == list(range(20))
    assert (limited.total_count, limited.has_more) == (60, True)
    assert [d["n"] for d in collection.iter_documents({"n": {"$lt": 30}})] == list(range(30))
    assert collection.find_one({}, sort=[("n", SortDirection.DESC)])["n"] == 59


@pytest.mark.parametrize("cap", [1000, 7], ids=["default-cap", "cap-7"])
def test_loader_visits_every_document_past_the_cap(
    stand_in: LocalSupabase,
    make_db: MakeDb,
    max_rows: Callable[[int | None], None],
    cap: int,
) -> None:
    db = make_db()
    _fill(stand_in, db.create_collection("docs", Doc), 1200)
    max_rows(cap)
    seen: list[int] = []

    def loader(document: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(document["n"])
        if document["n"] % 100 == 0:
            return None
        return {**document, "migrated": True} if document["n"] % 2 else document

    fresh = make_db(prefix=db.table_prefix, create_tables=False)
    collection = fresh.get_or_create_collection("docs", Doc, loader)
    max_rows(None)
    assert sorted(seen) == list(range(1200))
    remaining = collection.find({})
    assert len(remaining.items) == 1188
    assert sum(1 for d in remaining.items if d.get("migrated")) == 600
    failed = stand_in.query(f'select count(*) from "{collection.tables.failed}"')
    assert failed == [(12,)]


def test_large_find_with_default_cap(stand_in: LocalSupabase, make_db: MakeDb) -> None:
    collection = make_db().get_or_create_collection("docs", Doc, identity)
    _fill(stand_in, collection, 1500)
    result = collection.find({"n": {"$ne": 3}})
    assert len(result.items) == 1499 and result.total_count == 1499
    assert collection.count({}) == 1500


def test_paging_is_stable_under_concurrent_inserts(
    stand_in: LocalSupabase, make_db: MakeDb, max_rows: Callable[[int | None], None]
) -> None:
    import threading

    db = make_db(page_size=50)
    collection = db.get_or_create_collection("docs", Doc, identity)
    _fill(stand_in, collection, 60)
    max_rows(7)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 200:
            collection.insert_one({"id": f"z{i:05d}", "version": "1", "creation_utc": "2099", "n": -1})
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = collection.find({})
    finally:
        stop.set()
        thread.join()
    ids = [d["id"] for d in result.items]
    assert len(ids) == len(set(ids)) == result.total_count
    assert ids[:60] == [f"d{i:05d}" for i in range(60)]
    assert all(d["n"] == -1 for d in result.items[60:])


def test_metadata_reads_come_from_the_write_through_cache(
    stand_in: LocalSupabase, make_db: MakeDb
) -> None:
    db = make_db(("metadata",))
    metadata = db.get_or_create_collection("metadata", Doc, identity)
    assert _requests(stand_in, lambda: metadata.find_one({})) == 1
    document = {"id": "m1", "version": "0.1.0", "creation_utc": "2024"}
    assert _requests(stand_in, lambda: metadata.insert_one(document)) == 1
    assert _requests(stand_in, lambda: metadata.find_one({})) == 0
    assert metadata.find_one({}) == document
    assert _requests(
        stand_in, lambda: metadata.update_one({"id": {"$eq": "m1"}}, {"version": "0.2.0"})
    ) == 1
    with stand_in.requests.capture() as seen:
        assert metadata.find({}).items == [{**document, "version": "0.2.0"}]
    assert len(seen) == 0
    assert metadata.find({"version": {"$eq": "0.2.0"}}).total_count == 1  # filtered: server
