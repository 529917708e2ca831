"""Parlant's stores over JSON files (what `session_store="local"` writes) and over Supabase."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facade_helpers import RecordingLogger
from parlant.adapters.db.json_file import JSONFileDocumentDatabase
from parlant.core.agents import AgentId
from parlant.core.common import IdGenerator
from parlant.core.context_variables import ContextVariableDocumentStore
from parlant.core.customers import CustomerDocumentStore, CustomerId, CustomerStore
from parlant.core.sessions import EventKind, EventSource, SessionDocumentStore
from parlant.core.tags import TagId

from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.wiring import supabase_stores

GUEST_ID = CustomerStore.GUEST_ID


@dataclass
class Stores:
    sessions: SessionDocumentStore
    customers: CustomerDocumentStore
    variables: ContextVariableDocumentStore


@asynccontextmanager
async def json_stores(home: Path) -> AsyncIterator[Stores]:
    """The three stores on JSONFileDocumentDatabase files, named as parlant.sdk names them."""
    logger = RecordingLogger()
    ids = IdGenerator()
    async with AsyncExitStack() as stack:

        async def db(name: str) -> JSONFileDocumentDatabase:
            return await stack.enter_async_context(
                JSONFileDocumentDatabase(logger, home / f"{name}.json")
            )

        sessions = await stack.enter_async_context(
            SessionDocumentStore(await db("sessions"), allow_migration=False)
        )
        customers = await stack.enter_async_context(
            CustomerDocumentStore(ids, await db("customers"), allow_migration=False)
        )
        variables = await stack.enter_async_context(
            ContextVariableDocumentStore(ids, await db("context_variables"), allow_migration=False)
        )
        yield Stores(sessions, customers, variables)


@asynccontextmanager
async def remote_stores(settings: SupabaseSettings) -> AsyncIterator[Stores]:
    """The same stores on the adapter (allow_migration=False: the metadata must have come too)."""
    async with supabase_stores(settings, allow_migration=False) as opened:
        yield Stores(opened.sessions, opened.customers, opened.variables)


async def populate(stores: Stores, events: int = 30) -> dict[str, Any]:
    """A customer with tags, a session with events (one deleted), variables with values."""
    ada = await stores.customers.create_customer(
        "Ada", extra={"email": "ada@example.test", "plan": "pro"},
        tags=[TagId("vip"), TagId("beta")],
    )
    bob = await stores.customers.create_customer("Bob")
    session = await stores.sessions.create_session(ada.id, AgentId("agent-1"), title="Hello")
    for i in range(events):
        await stores.sessions.create_event(
            session_id=session.id,
            source=EventSource.CUSTOMER if i % 2 else EventSource.AI_AGENT,
            kind=EventKind.MESSAGE if i % 3 else EventKind.STATUS,
            trace_id=f"trace-{i}",
            data={"message": f"message {i}", "i": i, "score": i / 4, "nested": {"ok": [1, None, True]}},
        )
    listed = await stores.sessions.list_events(session.id)
    await stores.sessions.delete_event(listed[4].id)
    await stores.sessions.set_metadata(session.id, "k", {"v": [1, 2]})
    other = await stores.sessions.create_session(bob.id, AgentId("agent-2"))
    await stores.sessions.create_event(
        session_id=other.id, source=EventSource.CUSTOMER, kind=EventKind.MESSAGE,
        trace_id="t", data={"message": "hi"},
    )
    plan = await stores.variables.create_variable("plan", description="the plan")
    await stores.variables.add_variable_tag(plan.id, TagId("billing"))
    await stores.variables.update_value(plan.id, ada.id, {"tier": 1})
    await stores.variables.update_value(plan.id, ada.id, {"tier": 2})
    await stores.variables.update_value(plan.id, CustomerId(bob.id), "basic")
    await stores.variables.create_variable("locale")
    return {"ada": ada.id, "bob": bob.id, "session": session.id, "other": other.id, "plan": plan.id}


async def snapshot(stores: Stores) -> dict[str, Any]:
    """Everything the stores give back, in a comparable form (Parlant's own dataclasses)."""
    sessions = sorted((await stores.sessions.list_sessions()).items, key=lambda s: s.id)
    customers = sorted(
        # The guest customer is made up on every read (creation_utc = now), never stored.
        (c for c in (await stores.customers.list_customers()).items if c.id != GUEST_ID),
        key=lambda c: c.id,
    )
    variables = sorted(await stores.variables.list_variables(), key=lambda v: v.id)
    return {
        "sessions": sessions,
        "events": {
            s.id: list(await stores.sessions.list_events(s.id, exclude_deleted=False))
            for s in sessions
        },
        "customers": customers,
        "tagged": sorted(
            c.id for c in (await stores.customers.list_customers(tags=[TagId("vip")])).items
        ),
        "variables": variables,
        "values": {
            v.id: sorted(await stores.variables.list_values(v.id), key=lambda kv: kv[0])
            for v in variables
        },
    }
