"""The synchronous inspection API (`parlant_supabase_sync.connect`) against the stand-in."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_helpers import StoreTables, event

from parlant_supabase_sync import connect
from parlant_supabase_sync.api import Connection, encode_cursor
from parlant_supabase_sync.errors import (
    DuplicateDocument,
    TableMissing,
    UnsupportedFilter,
)
from parlant_supabase_sync.local.stack import LocalSupabase


@pytest.fixture
def db(local_supabase: LocalSupabase) -> Iterator[Connection]:
    with connect(url=local_supabase.url, key=local_supabase.secret_key) as connection:
        yield connection


@pytest.fixture
def store(make_store: Callable[[], StoreTables]) -> StoreTables:
    tables = make_store()
    tables.insert_sql("events", [event(i, session="s1" if i < 6 else "s2") for i in range(10)])
    return tables


def test_readme_example_counts_with_a_where_filter(
    local_supabase_env: dict[str, str], store: StoreTables
) -> None:
    with connect() as db:  # SUPABASE_URL / SUPABASE_KEY from the environment
        events = db.store(store.prefix).collection("events")
        assert events.count({"session_id": {"$eq": "s1"}}) == 6


def test_reads_find_find_one_get_iteration(db: Connection, store: StoreTables) -> None:
    events = db.store(store.prefix).collection("events")
    assert events.count() == 10
    page = events.find({"session_id": {"$eq": "s2"}}, limit=2)
    assert [d["offset"] for d in page.items] == [6, 7]
    assert page.total_count == 4 and page.has_more
    assert page.next_cursor is not None
    rest = events.find({"session_id": {"$eq": "s2"}}, cursor=encode_cursor(page.next_cursor))
    assert [d["offset"] for d in rest.items] == [8, 9]
    assert events.find_one({"deleted": {"$eq": False}}, sort="offset:desc") == event(
        9, session="s2"
    )
    assert events.get("ev-000003") == event(3)
    assert events.get("missing") is None
    assert [d["offset"] for d in events] == list(range(10))
    assert [d["offset"] for d in events.rows(sort=[("offset", "desc")], page_size=3)] == list(
        range(9, -1, -1)
    )
    by_offset = events.find(sort="offset:desc", limit=3)
    assert [d["offset"] for d in by_offset.items] == [9, 8, 7] and by_offset.has_more


def test_writes_insert_update_delete(db: Connection, store: StoreTables) -> None:
    events = db.store(store.prefix)["events"]
    events.insert(event(50))
    with pytest.raises(DuplicateDocument):
        events.insert(event(50))
    merged = events.update("ev-000050", {"deleted": True, "extra": {"k": [1, 2]}})
    assert merged is not None and merged["deleted"] is True and merged["offset"] == 50
    updated = events.update({"offset": {"$eq": 50}}, {"kind": "status"})
    assert updated is not None and updated["kind"] == "status"
    assert events.delete("ev-000050") == {
        **event(50),
        "deleted": True,
        "extra": {"k": [1, 2]},
        "kind": "status",
    }
    assert events.delete("ev-000050") is None
    assert events.count() == 10


def test_stores_and_tables_come_from_one_report_request(
    db: Connection, store: StoreTables, local_supabase: LocalSupabase
) -> None:
    local_supabase.requests.clear()
    [info] = db.stores([store.prefix])
    assert local_supabase.requests.count(path_contains="parlant_schema_report") == 1
    assert local_supabase.requests.count() == 1
    assert info.prefix == store.prefix and info.key is None
    events = next(c for c in info.collections if c.name == "events")
    assert (events.table, events.exists, events.failed_exists, events.rls) == (
        store.table("events"), True, True, True,
    )  # fmt: skip
    tables = db.tables([store.prefix])
    assert tables[store.failed_table("events")].exists
    assert set(tables) == {store.table(c) for c in ("sessions", "events", "metadata")} | {
        store.failed_table(c) for c in ("sessions", "events")
    }


def test_default_stores_by_key_and_prefix_share_one_handle(db: Connection) -> None:
    assert db.store("sessions") is db.store("parlant_sessions_")
    assert db.store("context_variables").collections == (
        "variables", "variable_tag_associations", "values", "metadata",
    )  # fmt: skip
    assert db.store("customers").collection("customer_tag_associations").failed_table == (
        "parlant_customers_customer_tag_associations_failed_migrations"
    )


def test_errors_are_the_library_exceptions(db: Connection, adapter_functions: None) -> None:
    with pytest.raises(TableMissing, match="parlant-supabase-sync sql"):
        db.store("nowhere_sessions_").collection("events").count()
    with pytest.raises(UnsupportedFilter):
        list(db.store("nowhere_sessions_").collection("events").rows({"a": {"$like": "x"}}))


def test_collection_import_and_export_are_the_bulk_functions(
    db: Connection, store: StoreTables, tmp_path: Path
) -> None:
    events = db.store(store.prefix).collection("events")
    lines = [json.dumps(event(1)), json.dumps(event(77)), ""]
    report = events.import_jsonl(lines)
    assert (report.new, report.unchanged, report.written) == (1, 1, 1) and report.ok
    result = events.export_jsonl(tmp_path)
    assert result.path == str(tmp_path / f"{store.prefix}.events.jsonl") and result.documents == 11
    assert list(events.failed()) == []


def test_failed_listing_pages_by_the_unique_key_past_max_rows(
    db: Connection, store: StoreTables, local_supabase: LocalSupabase
) -> None:
    # The failed table's ids are not unique (the seed's tables have no key): 25 rows, 5 ids.
    table = store.failed_table("events")
    local_supabase.execute_sql(
        f'INSERT INTO public."{table}" (id, data) '
        "SELECT 'e' || (n % 5), jsonb_build_object('n', n) FROM generate_series(1, 25) AS n"
    )
    local_supabase.set_max_rows(7)
    try:
        rows = list(db.store(store.prefix).collection("events").failed())
    finally:
        local_supabase.set_max_rows(1000)
    assert sorted(row.document["n"] for row in rows) == list(range(1, 26))
