"""`migrate_local`: files written by Parlant's real JSON-file stores, moved into the stand-in and
read back through Parlant's stores on the adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from migrate_helpers import json_stores, populate, remote_stores, snapshot

from parlant_supabase_sync.errors import TableMissing
from parlant_supabase_sync.local.pytest_plugin import SupabaseTestDatabase, open_test_database
from parlant_supabase_sync.migrate_local import (
    MigrationInputError,
    MigrationReport,
    migrate_local,
)

if TYPE_CHECKING:
    from parlant_supabase_sync.local import LocalSupabase

pytestmark = pytest.mark.anyio

ALL_TABLES = [
    "parlant_sessions_metadata",
    "parlant_sessions_",
    "parlant_sessions_events",
    "parlant_customers_metadata",
    "parlant_customers_",
    "parlant_customers_customer_tag_associations",
    "parlant_context_variables_metadata",
    "parlant_context_variables_",
    "parlant_context_variables_variable_tag_associations",
    "parlant_context_variables_values",
]


def file_counts(home: Path) -> dict[str, int]:
    counts = {}
    for store, prefix in (
        ("sessions", "parlant_sessions_"),
        ("customers", "parlant_customers_"),
        ("context_variables", "parlant_context_variables_"),
    ):
        for name, documents in json.loads((home / f"{store}.json").read_text()).items():
            table = prefix if prefix.rstrip("_").endswith(name) else prefix + name
            counts[table] = len(documents)
    return counts


def table_counts(db: SupabaseTestDatabase) -> dict[str, int]:
    counts = {}
    for table in ALL_TABLES:
        (count,) = db.query(f'SELECT count(*) FROM "{db.schema}"."{table}"')[0]
        counts[table] = int(count)
    return counts


def writes(stand_in: LocalSupabase) -> int:
    return stand_in.requests.count(method="POST", path_contains="rpc/parlant_write")


async def write_local(home: Path) -> dict[str, str]:
    async with json_stores(home) as stores:
        return await populate(stores)


async def test_every_document_arrives_and_parlant_reads_the_same_back(
    parlant_home: Path, supabase_db: SupabaseTestDatabase
) -> None:
    await write_local(parlant_home)
    with supabase_db.connect() as connection:
        report = migrate_local(parlant_home, connection)
    assert report.ok and not report.dry_run and report.missing_files == []
    expected = file_counts(parlant_home)
    assert {t.table: t.read for t in report.tables} == expected
    assert {t.table: t.written for t in report.tables} == expected
    assert all(t.skipped == 0 and t.conflicts == [] for t in report.tables)
    assert expected["parlant_sessions_events"] == 31 and expected["parlant_context_variables_values"] == 2
    assert table_counts(supabase_db) == expected
    async with json_stores(parlant_home) as local:
        before = await snapshot(local)
    async with remote_stores(supabase_db.settings) as remote:
        after = await snapshot(remote)
    assert after == before
    assert len(after["events"]) == 2 and after["tagged"] and after["values"]


async def test_a_second_run_writes_nothing(
    parlant_home: Path, supabase_db: SupabaseTestDatabase
) -> None:
    await write_local(parlant_home)
    first = migrate_local(parlant_home, supabase_db.settings)  # settings: opens its own connection
    stand_in = supabase_db.stand_in
    before = writes(stand_in)
    again = migrate_local(parlant_home, supabase_db.settings)
    assert writes(stand_in) == before  # not one write request
    assert again.ok and again.written == 0
    assert {t.table: t.skipped for t in again.tables} == {t.table: t.read for t in first.tables}
    assert table_counts(supabase_db) == file_counts(parlant_home)


async def test_dry_run_reports_and_writes_nothing(
    parlant_home: Path, supabase_db: SupabaseTestDatabase
) -> None:
    await write_local(parlant_home)
    before = writes(supabase_db.stand_in)
    with supabase_db.connect() as connection:
        dry = migrate_local(parlant_home, connection, dry_run=True)
        assert writes(supabase_db.stand_in) == before
        assert all(count == 0 for count in table_counts(supabase_db).values())
        assert dry.dry_run and {t.table: t.written for t in dry.tables} == file_counts(parlant_home)
        assert "would write" in dry.summary()
        real = migrate_local(parlant_home, connection)
    assert [t.written for t in real.tables] == [t.written for t in dry.tables]


async def test_conflicts_are_reported_and_not_overwritten(
    parlant_home: Path, supabase_db: SupabaseTestDatabase
) -> None:
    ids = await write_local(parlant_home)
    customers = json.loads((parlant_home / "customers.json").read_text())["customers"]
    ada = next(doc for doc in customers if doc["id"] == ids["ada"])
    bob = next(doc for doc in customers if doc["id"] == ids["bob"])
    with supabase_db.connect() as connection:
        table = connection.store("customers").collection("customers")
        table.insert({**ada, "name": "Ada (edited on Supabase)"})
        table.insert(bob)  # already there, identical
        report = migrate_local(parlant_home, connection)
        entry = report.table("parlant_customers_")
        assert (entry.read, entry.written, entry.skipped, entry.conflicts) == (2, 0, 1, [ids["ada"]])
        assert not report.ok and report.conflicts == 1
        assert table.get(ids["ada"])["name"] == "Ada (edited on Supabase)"  # type: ignore[index]
        assert f"conflicts in parlant_customers_ (kept as they are): {ids['ada']}" in report.summary()
        # Everything else arrived.
        assert report.table("parlant_sessions_events").written == 31
        again = migrate_local(parlant_home, connection)
        assert again.written == 0 and again.table("parlant_customers_").conflicts == [ids["ada"]]
    for entry in report.tables + again.tables:
        assert entry.read == entry.written + entry.skipped + len(entry.conflicts)


async def test_metadata_of_a_store_already_started_on_supabase_is_not_doubled(
    parlant_home: Path, supabase_db: SupabaseTestDatabase
) -> None:
    await write_local(parlant_home)
    async with remote_stores(supabase_db.settings):
        pass  # Parlant writes each store's metadata (its own id, the same version)
    report = migrate_local(parlant_home, supabase_db.settings)
    for store in ("sessions", "customers", "context_variables"):
        entry = report.table(f"{store}/metadata")
        assert (entry.read, entry.written, entry.skipped, entry.conflicts) == (1, 0, 1, [])
    assert table_counts(supabase_db)["parlant_sessions_metadata"] == 1
    async with remote_stores(supabase_db.settings) as remote:  # no MigrationRequired
        assert len((await remote.sessions.list_sessions()).items) == 2
    # A target store at another version: its metadata is a conflict, never replaced.
    supabase_db.execute_sql(
        "UPDATE parlant_customers_metadata SET version = '0.0.1', "
        "data = jsonb_set(data, '{version}', '\"0.0.1\"')"
    )
    conflicted = migrate_local(parlant_home, supabase_db.settings)
    assert len(conflicted.table("customers/metadata").conflicts) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"customers": [{"id": "c1", "version": "0.1.0"', "not valid JSON"),
        ('{"customers": [{"id": "c1", "version": "0.1.0", "x": NaN}]}', "NaN"),
        ('{"customers": [{"id": "c1", "version": "0.1.0"}]}', "missing 'creation_utc'"),
        ('{"customers": {"id": "c1"}}', "not a list of documents"),
        ('["customers"]', "not a Parlant JSON-file database"),
        ('{"customers": [{"id": "c1", "version": "0.1.0", "creation_utc": "x", "n": "a\\u0000"}]}',
         "u0000"),
    ],
)
async def test_a_broken_file_writes_nothing_and_is_named(
    parlant_home: Path, supabase_db: SupabaseTestDatabase, content: str, message: str
) -> None:
    await write_local(parlant_home)
    (parlant_home / "customers.json").write_text(content)
    before = writes(supabase_db.stand_in)
    with pytest.raises(MigrationInputError, match=message) as caught:
        migrate_local(parlant_home, supabase_db.settings)
    assert str(parlant_home / "customers.json") in str(caught.value)
    assert str(caught.value).startswith("nothing was migrated")
    assert writes(supabase_db.stand_in) == before
    assert all(count == 0 for count in table_counts(supabase_db).values())


async def test_a_missing_table_stops_the_run_before_any_write(
    parlant_home: Path, supabase_proc: LocalSupabase
) -> None:
    await write_local(parlant_home)
    # Only the sessions store's tables exist: the customers store's are missing.
    with open_test_database(supabase_proc, stores=["sessions"]) as db:
        with pytest.raises(TableMissing):
            migrate_local(parlant_home, db.settings)
        (count,) = db.query(f'SELECT count(*) FROM "{db.schema}"."parlant_sessions_events"')[0]
        assert count == 0


async def test_missing_files_failed_migrations_and_other_files_are_reported(
    parlant_home: Path, supabase_db: SupabaseTestDatabase
) -> None:
    await write_local(parlant_home)
    (parlant_home / "context_variables.json").unlink()
    sessions = json.loads((parlant_home / "sessions.json").read_text())
    sessions["failed_migrations"] = [
        {"id": "old1", "version": "0.0.1", "creation_utc": "2020-01-01T00:00:00+00:00"}
    ]
    (parlant_home / "sessions.json").write_text(json.dumps(sessions))
    (parlant_home / "agents.json").write_text("{}")
    (parlant_home / "tags.json").write_text("{}")
    (parlant_home / "customers.json").write_bytes(b"")  # Parlant reads an empty file as {}
    report: MigrationReport = migrate_local(parlant_home, supabase_db.settings)
    assert report.missing_files == ["context_variables.json"]
    assert report.other_files == ["agents.json", "tags.json"]
    assert [(i["file"], i["collection"], i["documents"]) for i in report.ignored] == [
        ("sessions.json", "failed_migrations", 1)
    ]
    assert report.table("parlant_sessions_events").written == 31
    assert all(t.read == 0 for t in report.tables if t.store == "customers")
    text = report.summary()
    assert "failed_migrations" in text and "agents.json" in text and "context_variables.json" in text
    assert report.as_dict()["totals"]["written"] == report.written


async def test_custom_prefixes(parlant_home: Path, supabase_proc: LocalSupabase) -> None:
    await write_local(parlant_home)
    (parlant_home / "customers.json").unlink()
    (parlant_home / "context_variables.json").unlink()
    with open_test_database(
        supabase_proc, stores={"acme_sessions_": ("sessions", "events", "metadata")}
    ) as db:
        report = migrate_local(
            parlant_home, db.settings, prefixes={"sessions": "acme_sessions_"}
        )
        assert report.table("acme_sessions_events").written == 31
        with pytest.raises(ValueError, match="unknown store"):
            migrate_local(parlant_home, db.settings, prefixes={"agents": "x_"})


async def test_thousands_of_events_past_the_max_rows_cap(
    parlant_home: Path, supabase_db: SupabaseTestDatabase
) -> None:
    ids = await write_local(parlant_home)
    # Parlant rewrites the whole file on every event, so grow a real file by copying one of its
    # events under new ids and offsets instead of creating 2,500 through the store.
    data = json.loads((parlant_home / "sessions.json").read_text())
    template = next(e for e in data["events"] if e["session_id"] == ids["other"])
    data["events"] += [
        {**template, "id": f"bulk{i:05}", "offset": i + 1} for i in range(2500)
    ]
    (parlant_home / "sessions.json").write_text(json.dumps(data, indent=2))
    report = migrate_local(parlant_home, supabase_db.settings, batch_size=1000)
    assert report.table("parlant_sessions_events").written == 2531
    assert table_counts(supabase_db)["parlant_sessions_events"] == 2531
    async with remote_stores(supabase_db.settings) as remote:
        events = await remote.sessions.list_events(ids["other"])  # type: ignore[arg-type]
        assert sorted(e.offset for e in events) == list(range(2501))  # one creation_utc: id order
    again = migrate_local(parlant_home, supabase_db.settings)
    assert again.written == 0 and again.table("parlant_sessions_events").skipped == 2531
