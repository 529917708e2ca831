"""Parlant's own stores over the adapter (contract §6 items 9-10), on both anyio backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import psycopg
import pytest
from parlant.core.agents import AgentId
from parlant.core.common import IdGenerator
from parlant.core.context_variables import ContextVariableDocumentStore
from parlant.core.customers import CustomerDocumentStore, CustomerId
from parlant.core.persistence.common import ObjectId
from parlant.core.persistence.document_database import identity_loader
from parlant.core.sessions import EventKind, EventSource, SessionDocumentStore
from parlant.core.tags import TagId

from parlant_supabase_sync.errors import ConfigurationError
from parlant_supabase_sync.facade import SupabaseDocumentDatabase
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.wiring import SupabaseStores, supabase_stores

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from parlant_supabase_sync.local import LocalSupabase

pytestmark = pytest.mark.anyio


def rows(stack: LocalSupabase, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


@pytest.fixture
async def stores(settings: SupabaseSettings) -> AsyncIterator[SupabaseStores]:
    async with supabase_stores(settings, allow_migration=False) as opened:
        yield opened


async def add_events(store: SessionDocumentStore, session_id: Any, count: int) -> None:
    for i in range(count):
        await store.create_event(
            session_id=session_id,
            source=EventSource.CUSTOMER if i % 2 else EventSource.AI_AGENT,
            kind=EventKind.MESSAGE if i % 3 else EventKind.STATUS,
            trace_id=f"t{i}",
            data={"message": f"m{i}", "i": i},
        )


async def test_session_store_offsets_min_offset_kinds_and_soft_delete(
    stores: SupabaseStores,
) -> None:
    sessions = stores.sessions
    session = await sessions.create_session(CustomerId("c1"), AgentId("a1"), title="t")
    await add_events(sessions, session.id, 12)
    events = await sessions.list_events(session.id)
    assert [e.offset for e in events] == list(range(12))
    recent = await sessions.list_events(session.id, min_offset=10)
    assert [e.offset for e in recent] == [10, 11]
    recent_messages = await sessions.list_events(
        session.id, min_offset=10, kinds=[EventKind.MESSAGE]
    )
    assert [e.offset for e in recent_messages] == [10, 11]
    statuses = await sessions.list_events(session.id, kinds=[EventKind.STATUS])
    assert [e.offset for e in statuses] == [0, 3, 6, 9]
    await sessions.delete_event(events[5].id)
    remaining = await sessions.list_events(session.id)
    assert [e.offset for e in remaining] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    everything = await sessions.list_events(session.id, exclude_deleted=False)
    assert len(everything) == 12
    # The next event still continues after the highest offset (find_one sort by int offset).
    await add_events(sessions, session.id, 1)
    assert (await sessions.list_events(session.id, min_offset=12))[0].offset == 12
    await sessions.set_metadata(session.id, "k", {"nested": [1, None, True]})
    assert (await sessions.read_session(session.id)).metadata == {
        "k": {"nested": [1, None, True]}
    }
    listing = await sessions.list_sessions(customer_id=CustomerId("c1"))
    assert [s.id for s in listing.items] == [session.id]


async def test_customer_with_tags_and_extra_round_trips(stores: SupabaseStores) -> None:
    customer = await stores.customers.create_customer(
        "Ada", extra={"email": "ada@example.test"}, tags=[TagId("vip")]
    )
    again = await stores.customers.read_customer(customer.id)
    assert again.name == "Ada" and again.extra == {"email": "ada@example.test"}
    assert again.tags == [TagId("vip")]
    tagged = await stores.customers.list_customers(tags=[TagId("vip")])
    assert [c.id for c in tagged.items] == [customer.id]


async def test_context_variable_value_upserted_twice_is_one_row(
    stores: SupabaseStores, supabase: LocalSupabase
) -> None:
    variable = await stores.variables.create_variable("plan", description="the plan")
    first = await stores.variables.update_value(variable.id, "c1", {"tier": 1})
    second = await stores.variables.update_value(variable.id, "c1", {"tier": 2})
    assert first.id != second.id  # Parlant puts a new id in the upsert params
    value = await stores.variables.read_value(variable.id, "c1")
    assert value is not None and value.data == {"tier": 2}
    stored = rows(
        supabase,
        "SELECT id FROM parlant_context_variables_values WHERE data->>'variable_id' = %s",
        variable.id,
    )
    assert stored == [(second.id,)]


async def test_each_store_writes_its_version_in_its_own_namespace(
    stores: SupabaseStores, supabase: LocalSupabase
) -> None:
    versions = {
        prefix: rows(supabase, f"SELECT data->>'version' FROM {prefix}metadata")
        for prefix in (
            "parlant_sessions_",
            "parlant_customers_",
            "parlant_context_variables_",
        )
    }
    assert versions == {
        "parlant_sessions_": [(SessionDocumentStore.VERSION.to_string(),)],
        "parlant_customers_": [(CustomerDocumentStore.VERSION.to_string(),)],
        "parlant_context_variables_": [
            (ContextVariableDocumentStore.VERSION.to_string(),)
        ],
    }


async def test_two_stores_in_one_namespace_are_refused(
    supabase: LocalSupabase, settings: SupabaseSettings
) -> None:
    # The sessions prefix names its store, so the customer store is told the prefix to use
    # instead of reading the session store's version (Parlant's bare ServerOutdated).
    def database() -> SupabaseDocumentDatabase:
        return SupabaseDocumentDatabase(_logger(), "parlant_sessions_", settings)

    async with database() as db, SessionDocumentStore(db):
        pass
    with pytest.raises(ConfigurationError, match="table_prefix='parlant_customers_'"):
        async with database() as db, CustomerDocumentStore(IdGenerator(), db):
            pass


async def test_more_than_a_thousand_events_are_listed_in_full(
    stores: SupabaseStores, supabase: LocalSupabase
) -> None:
    session = await stores.sessions.create_session(CustomerId("c1"), AgentId("a1"))
    events = await stores.session_database.get_or_create_collection(
        "events",
        dict,
        identity_loader,  # type: ignore[arg-type]
    )
    total = 1100
    limiter = anyio.CapacityLimiter(8)

    async def insert(i: int) -> None:
        async with limiter:
            await events.insert_one(
                {
                    "id": ObjectId(f"e{i:05d}"),
                    "version": "0.9.0",
                    "creation_utc": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}+00:00",
                    "session_id": session.id,
                    "source": "customer",
                    "kind": "message",
                    "offset": i,
                    "trace_id": "t",
                    "data": {"message": str(i)},
                    "metadata": None,
                    "deleted": False,
                }
            )

    async with anyio.create_task_group() as tg:
        for i in range(total):
            tg.start_soon(insert, i)
    listed = await stores.sessions.list_events(session.id)
    assert [e.offset for e in listed] == list(range(total))
    assert [
        e.offset for e in await stores.sessions.list_events(session.id, min_offset=1090)
    ] == list(range(1090, total))
    # The next offset comes from the true maximum, past the 1000-row cap.
    await add_events(stores.sessions, session.id, 1)
    assert (await stores.sessions.list_events(session.id, min_offset=total))[
        0
    ].offset == total


async def test_twenty_parallel_updates_on_disjoint_keys_lose_nothing(
    stores: SupabaseStores,
) -> None:
    session = await stores.sessions.create_session(CustomerId("c1"), AgentId("a1"))
    collection = await stores.session_database.get_or_create_collection(
        "sessions",
        dict,
        identity_loader,  # type: ignore[arg-type]
    )

    async def update(i: int) -> None:
        result = await collection.update_one({"id": {"$eq": session.id}}, {f"k{i}": i})
        assert result.matched_count == 1

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(update, i)
    stored = await collection.find_one({"id": {"$eq": session.id}})
    assert stored is not None
    assert {k: stored[k] for k in stored if k.startswith("k")} == {
        f"k{i}": i for i in range(20)
    }
    assert (await stores.sessions.read_session(session.id)).customer_id == "c1"


async def test_delete_session_removes_all_its_events_with_parallel_deletes(
    stores: SupabaseStores, supabase: LocalSupabase
) -> None:
    keep = await stores.sessions.create_session(CustomerId("c1"), AgentId("a1"))
    doomed = await stores.sessions.create_session(CustomerId("c2"), AgentId("a1"))
    await add_events(stores.sessions, keep.id, 3)
    await add_events(stores.sessions, doomed.id, 40)
    await stores.sessions.delete_session(doomed.id)
    counts = rows(
        supabase,
        "SELECT session_id, count(*) FROM parlant_sessions_events GROUP BY session_id",
    )
    assert counts == [(keep.id, 3)]


def _logger() -> Any:
    from facade_helpers import RecordingLogger

    return RecordingLogger()
