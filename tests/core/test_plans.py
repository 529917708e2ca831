"""Parlant's access patterns are index-backed: EXPLAIN of the exact SQL the stand-in runs.

The adapter's requests go to a second gateway on the stand-in's PostgreSQL whose executor is the
real engine with one addition: every read statement (`WITH pgrst_source AS (SELECT …)`) is first
run as `EXPLAIN (FORMAT JSON)` with the same parameters, on the same connection, inside the
engine's transaction (role and GUCs set). So each plan is the plan of the statement the request
really ran, planned with its values bound, as PostgreSQL plans psycopg's statements.

Tables hold `SIZE` Parlant-shaped documents each (benchmarks/scale.py's loader, then ANALYZE);
the touched entities are small (a session of 50 events, a customer with 5 sessions and 2 tags,
a tag with 10 owners). With selectivities of 1/200 and below the planner's choice of an index
over a sequential scan does not hinge on statistics noise, so `enable_seqscan` stays on: a
Seq Scan on a document table is a missing or unusable index. The GIN index the older adapter's
SQL created on `data` is added to every table here, to show that no plan uses it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import psycopg
import pytest
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from scale import EVENTS_PER_SESSION, Layout, load_sql

from parlant_supabase_sync._types import SortDirection
from parlant_supabase_sync.core import SyncDocumentCollection, SyncDocumentDatabase
from parlant_supabase_sync.ddl import generate_schema
from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.settings import SupabaseSettings

SIZE = 10_000
INDEX_SCANS = ("Index Scan ", "Index Only Scan ", "Bitmap Heap Scan ")
GIN_INDEX = "pss_plans_data_gin"
GIN_TABLES = ("sessions", "events", "customer_tag_associations", "variable_tag_associations")


@dataclass
class Plans:
    """Plans of the read statements run since the last `take()`."""

    plans: list[dict[str, Any]] = field(default_factory=list)

    def take(self) -> list[dict[str, Any]]:
        taken, self.plans = self.plans, []
        return taken


def explaining_executor(plans: Plans) -> Callable[..., Any]:
    """`engine.execute`, planning every read statement with EXPLAIN before running it."""
    from parlant_supabase_sync.local.engine import execute

    class ExplainingCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
            text = query if isinstance(query, str) else query.as_string(self.connection)
            if text.startswith("WITH pgrst_source AS (SELECT"):
                super().execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + query, params)
                row = self.fetchone()
                assert row is not None
                plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
                plans.plans.append(plan[0]["Plan"])
            return super().execute(query, params, **kwargs)

    def run(conn: psycopg.Connection[Any], request: Any, config: Any) -> Any:
        previous = conn.cursor_factory
        conn.cursor_factory = ExplainingCursor
        try:
            return execute(conn, request, config)
        finally:
            conn.cursor_factory = previous

    return run


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def describe(scan: dict[str, Any]) -> str:
    """`Index Scan <index>`, `Bitmap Heap Scan <index>[,<index>]`, `Seq Scan`…"""
    indexes = [node["Index Name"] for node in nodes(scan) if "Index Name" in node]
    return " ".join([scan["Node Type"], ",".join(indexes)]).strip()


@dataclass
class Stores:
    layout: Layout
    plans: Plans
    collections: dict[str, SyncDocumentCollection]

    def plan_of(self, collection: str, call: Callable[[SyncDocumentCollection], object]) -> list[str]:
        """Run one call; the scans of `collection`'s table in the plans of its reads."""
        self.plans.take()
        call(self.collections[collection])
        table = self.layout.tables[collection]
        taken = self.plans.take()
        assert taken, "the call sent no read"
        scans = [
            describe(node)
            for plan in taken
            for node in nodes(plan)
            if node.get("Relation Name") == table
        ]
        assert scans, f"no plan reads {table}: {taken}"
        return scans


class Document(TypedDict, total=False):
    id: str
    version: str
    creation_utc: str


def _identity(document: dict[str, Any]) -> dict[str, Any]:
    return document


@pytest.fixture(scope="module")
def stores(stand_in: LocalSupabase) -> Iterator[Stores]:
    from parlant_supabase_sync.local.bootstrap import AUTHENTICATOR
    from parlant_supabase_sync.local.engine import EngineConfig
    from parlant_supabase_sync.local.gateway import Gateway, GatewayConfig
    from parlant_supabase_sync.local.keys import KeySet

    layout = Layout(SIZE)
    stand_in.execute_sql(generate_schema(layout.stores))
    stand_in.execute_sql(
        "\n".join(
            f'CREATE INDEX IF NOT EXISTS "{GIN_INDEX}_{number}" ON "{layout.tables[name]}" '
            "USING gin (data);"
            for number, name in enumerate(GIN_TABLES)
        )
    )
    stand_in.execute_sql(load_sql(layout))
    keys = KeySet.generate()
    plans = Plans()
    gateway = Gateway(
        GatewayConfig(
            database_url=stand_in.postgres.dsn(AUTHENTICATOR),
            jwt_secret=keys.jwt_secret,
            api_keys=keys.api_keys(),
            engine=EngineConfig(max_rows=1000, schemas=stand_in.schemas),
            schema_cache=False,
            pool_size=2,
        ),
        executor=explaining_executor(plans),
    )
    gateway.start()
    settings = SupabaseSettings(url=gateway.url, key=keys.secret)
    databases = {
        prefix: SyncDocumentDatabase(settings, table_prefix=prefix, logger=logging.getLogger("tests.plans"))
        for prefix in layout.stores
    }
    collections = {
        name: databases[prefix].get_or_create_collection(name, Document, _identity)
        for prefix, names in layout.stores.items()
        for name in names
    }
    try:
        yield Stores(layout, plans, collections)
    finally:
        for database in databases.values():
            database.close()
        gateway.stop()
        stand_in.execute_sql(
            "\n".join(f'DROP TABLE IF EXISTS "{table}" CASCADE;' for table in _all_tables(layout))
        )


def _all_tables(layout: Layout) -> list[str]:
    from parlant_supabase_sync.naming import tables_for

    return [
        name
        for prefix, collections in layout.stores.items()
        for names in tables_for(prefix, collections)
        for name in (names.main, names.failed)
        if name is not None
    ]


def assert_index_backed(scans: list[str]) -> None:
    """Every scan of the table goes through a btree index (never a Seq Scan, never the GIN)."""
    # `describe` puts the index names after the node type: "Index Scan " + a name, etc.
    assert all(scan.startswith(INDEX_SCANS) for scan in scans), scans
    assert not [scan for scan in scans if GIN_INDEX in scan], scans


SESSION = {"session_id": {"$eq": Layout(SIZE).session_id(0)}}
LIVE = {**SESSION, "deleted": {"$eq": False}}

PATTERNS: dict[str, tuple[str, Callable[[SyncDocumentCollection], object]]] = {
    "read_session (find_one by id)": (
        "sessions",
        lambda c: c.find_one({"id": {"$eq": Layout(SIZE).session_id(3)}}),
    ),
    "list_sessions of a customer": (
        "sessions",
        lambda c: c.find({"customer_id": {"$eq": "cust7"}}),
    ),
    "list_sessions of a customer, a page of 2": (
        "sessions",
        lambda c: c.find({"customer_id": {"$eq": "cust7"}}, limit=2),
    ),
    "create_event: the latest event of the session": (
        "events",
        lambda c: c.find_one(SESSION, sort=(("offset", SortDirection.DESC),)),
    ),
    "list_events": ("events", lambda c: c.find(LIVE)),
    "list_events with min_offset": (
        "events",
        lambda c: c.find({**SESSION, "offset": {"$gte": 30}, "deleted": {"$eq": False}}),
    ),
    "list_events with kinds": (
        "events",
        lambda c: c.find(
            {"$or": [{**LIVE, "kind": {"$eq": kind}} for kind in ("message", "tool")]}
        ),
    ),
    "list_events with kinds and min_offset": (
        "events",
        lambda c: c.find(
            {
                "$or": [
                    {**SESSION, "offset": {"$gte": 30}, "deleted": {"$eq": False}, "kind": {"$eq": k}}
                    for k in ("message", "status")
                ]
            }
        ),
    ),
    "read_event / update_event (find_one by id and session)": (
        "events",
        lambda c: c.find_one(
            {"id": {"$eq": "nothere"}, **SESSION, "deleted": {"$ne": True}}
        ),
    ),
    "a customer's tags": (
        "customer_tag_associations",
        lambda c: c.find({"customer_id": {"$eq": "cust11"}}),
    ),
    "customers of tags (list_customers(tags=...))": (
        "customer_tag_associations",
        lambda c: c.find({"$or": [{"tag_id": {"$eq": "tag5"}}, {"tag_id": {"$eq": "tag6"}}]}),
    ),
    "a variable's tags": (
        "variable_tag_associations",
        lambda c: c.find({"variable_id": {"$eq": "var11"}}),
    ),
    "variables of tags (list_variables(tags=...))": (
        "variable_tag_associations",
        lambda c: c.find({"$or": [{"tag_id": {"$eq": "tag5"}}, {"tag_id": {"$eq": "tag6"}}]}),
    ),
}


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_access_pattern_is_index_backed(stores: Stores, pattern: str) -> None:
    collection, call = PATTERNS[pattern]
    scans = stores.plan_of(collection, call)
    assert_index_backed(scans)


def test_the_session_of_the_plans_has_its_events(stores: Stores) -> None:
    found = stores.collections["events"].find(SESSION)
    assert found.total_count == EVENTS_PER_SESSION


def test_the_gin_index_is_there_and_serves_containment_only(
    stand_in: LocalSupabase, stores: Stores
) -> None:
    # The index the plans above never use is valid: `@>` (which no Parlant filter compiles to)
    # can go through it. Sequential scans are off for this one statement because the question
    # is whether the index can serve it, not whether the planner prefers it on 10,000 rows.
    table = stores.layout.tables["events"]
    with psycopg.connect(stand_in.database_url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        row = conn.execute(
            f"EXPLAIN (FORMAT JSON) SELECT id FROM \"{table}\" "
            "WHERE data @> '{\"trace_id\": \"trace7\"}'"
        ).fetchone()
    assert row is not None
    plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    assert GIN_INDEX in describe(plan[0]["Plan"])
