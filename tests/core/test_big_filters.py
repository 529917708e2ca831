"""Filters of any size: lists of 2,500 ids give Transient's results through the stand-in's
8 KiB request-line limit (as Supabase's gateway enforces), in few round trips."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from core_helpers import Doc, MakeDb, Oracle, Pair, identity

from parlant_supabase_sync._types import SortDirection
from parlant_supabase_sync.local import LocalSupabase

TOTAL = 3000
LISTED = 2500


def _doc(i: int) -> dict[str, Any]:
    return {
        "id": f"item_{i:06d}",
        "version": "0.1.0",
        "creation_utc": f"2025-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}",
        "n": i % 17,
        "tag": f"tag_{i:06d}",
    }


@pytest.fixture(scope="module")
def big_pair(make_db: MakeDb) -> Pair:
    db = make_db()
    documents = [_doc(i) for i in range(TOTAL)]
    core = db.get_or_create_collection("docs", Doc, identity)
    core.insert_many(documents)
    oracle = Oracle().collection("docs")
    for document in documents:
        Oracle.call(oracle, "insert_one", document)
    return Pair(oracle, core)


@pytest.fixture(scope="module")
def make_db(stand_in: LocalSupabase) -> Iterator[MakeDb]:
    # Module scope: the 3,000 documents are inserted once for every case below.
    from core_helpers import unique_prefix

    from parlant_supabase_sync.core import SyncDocumentDatabase
    from parlant_supabase_sync.ddl import generate_schema
    from parlant_supabase_sync.settings import SupabaseSettings

    created: list[SyncDocumentDatabase] = []

    def make(**settings: Any) -> SyncDocumentDatabase:
        prefix = unique_prefix()
        stand_in.execute_sql(generate_schema({prefix: ("docs",)}))
        config = SupabaseSettings(url=stand_in.url, key=stand_in.secret_key, **settings)
        db = SyncDocumentDatabase(config, table_prefix=prefix)
        created.append(db)
        return db

    yield make
    for db in created:
        db.close()


IDS = [f"item_{i:06d}" for i in range(LISTED)]
TAGS = [f"tag_{i:06d}" for i in range(250, 250 + LISTED)]


# (our filter, the filter Transient evaluates). Transient walks a 2,500-branch $or in Python
# for every document (about 16 s per find of 3,000 documents), so for those shapes it is given
# the equivalent $in/$nin — the same set by its own definition of $or/$and over one field.
CASES = {
    "in": ({"id": {"$in": IDS}}, {"id": {"$in": IDS}}),
    "nin": ({"id": {"$nin": IDS}}, {"id": {"$nin": IDS}}),
    "or-eq": ({"$or": [{"id": {"$eq": i}} for i in IDS]}, {"id": {"$in": IDS}}),
    "and-ne": ({"$and": [{"id": {"$ne": i}} for i in IDS]}, {"id": {"$nin": IDS}}),
    "data-in": ({"tag": {"$in": TAGS}}, {"tag": {"$in": TAGS}}),
    "data-and-ne": ({"$and": [{"tag": {"$ne": t}} for t in TAGS]}, {"tag": {"$nin": TAGS}}),
    "mixed": (
        {"$and": [{"n": {"$gte": 3}}, {"$or": [{"tag": {"$eq": t}} for t in TAGS]}]},
        {"$and": [{"n": {"$gte": 3}}, {"tag": {"$in": TAGS}}]},
    ),
}


@pytest.mark.slow
@pytest.mark.scale
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("direction", [None, SortDirection.DESC])
def test_lists_of_2500_ids_match_transient_with_limits_and_cursors(
    big_pair: Pair, stand_in: LocalSupabase, case: str, direction: SortDirection | None
) -> None:
    where, oracle_where = CASES[case]

    def same(method: str, **kwargs: Any) -> Any:
        expected = Oracle.call(big_pair.oracle, method, oracle_where, **kwargs)
        actual = getattr(big_pair.core, method)(where, **kwargs)
        assert actual == expected, (case, method, kwargs)
        return actual

    with stand_in.requests.capture() as seen:
        everything = same("find", sort_direction=direction)
    assert len(seen) <= math.ceil(everything.total_count / 1000) + 1
    assert all(entry.status != 414 for entry in seen)
    first = same("find", limit=700, sort_direction=direction)
    if first.next_cursor is not None:
        same("find", limit=700, cursor=first.next_cursor, sort_direction=direction)
    assert big_pair.core.count(where) == everything.total_count
    assert big_pair.core.find(where, limit=0).total_count == everything.total_count


def test_a_filter_too_long_for_a_url_goes_in_a_post_body(
    big_pair: Pair, stand_in: LocalSupabase
) -> None:
    with stand_in.requests.capture() as seen:
        big_pair.same("find", {"id": {"$in": IDS[:20]}})
    assert [entry.method for entry in seen] == ["GET"]
    with stand_in.requests.capture() as seen:
        big_pair.same("find", {"id": {"$in": IDS}}, limit=10)
    assert [(entry.method, entry.path) for entry in seen] == [
        ("POST", "/rest/v1/rpc/parlant_find")
    ]


def test_sorted_pages_page_past_max_rows(
    big_pair: Pair, stand_in: LocalSupabase
) -> None:
    stand_in.set_max_rows(1000)
    rows, total = big_pair.core.find_sorted(
        {"n": {"$gte": 0}}, [("n", SortDirection.DESC), ("tag", SortDirection.ASC)], 1500,
        count=True,
    )
    expected = sorted((_doc(i) for i in range(TOTAL)), key=lambda d: (-d["n"], d["tag"]))
    assert total == TOTAL and rows == expected[:1500]
    more, _ = big_pair.core.find_sorted(
        {"n": {"$gte": 0}}, [("n", SortDirection.DESC), ("tag", SortDirection.ASC)], 2000,
        after=rows[-1],
    )
    assert rows + more == expected
