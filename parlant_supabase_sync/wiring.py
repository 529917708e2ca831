"""The three Parlant stores on Supabase, ready for ``parlant.sdk.Server``.

Recommended (constructor arguments; engine and tool events reach the new session store)::

    import parlant.sdk as p
    from parlant_supabase_sync import supabase_stores

    async with supabase_stores(allow_migration=False) as stores:
        async with p.Server(
            session_store=stores.sessions,
            customer_store=stores.customers,
            variable_store=stores.variables,
        ) as server:
            ...

:func:`supabase_stores` builds one :class:`SupabaseDocumentDatabase` per store, each on its own
table prefix (``parlant_sessions_``, ``parlant_customers_``, ``parlant_context_variables_``: each
store needs its own ``metadata`` table), sharing one HTTP client, one worker-thread limiter and
one metadata cache. The stores are entered (their migration check runs) before the block and
exited, with the databases and the HTTP client, after it. The Server uses store instances as they
are: it does not enter them and ignores its own ``migrate=`` flag for them, which is why
``allow_migration`` is given here.

Alternative, through ``configure_container`` (only if you must; the default stores have
already been built when it runs)::

    from parlant.core.agents import AgentStore
    from parlant.core.context_variables import ContextVariableStore
    from parlant.core.customers import CustomerStore
    from parlant.core.emission.event_publisher import EventPublisherFactory
    from parlant.core.emissions import EventEmitterFactory
    from parlant.core.sessions import SessionStore

    async with supabase_stores() as stores:

        async def configure_container(c: p.Container) -> p.Container:
            c[SessionStore] = stores.sessions
            c[CustomerStore] = stores.customers
            c[ContextVariableStore] = stores.variables
            # Without this the engine keeps emitting events into the default session store.
            c[EventEmitterFactory] = EventPublisherFactory(
                agent_store=c[AgentStore], session_store=stores.sessions
            )
            return c

        async with p.Server(configure_container=configure_container) as server:
            ...

Caveat of that route (parlant 3.3.2): the ``ServiceRegistry`` was built with the original
``EventEmitterFactory``, so events emitted by SDK tools (the plugin server) may still go to the
default (transient) session store. Prefer the constructor arguments.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx
from parlant.core.common import IdGenerator
from parlant.core.context_variables import ContextVariableDocumentStore
from parlant.core.customers import CustomerDocumentStore
from parlant.core.loggers import Logger
from parlant.core.sessions import SessionDocumentStore

from parlant_supabase_sync.cache import MetadataCache
from parlant_supabase_sync.facade import SupabaseDocumentDatabase
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.transport import build_http_client

__all__ = ["SupabaseStores", "supabase_stores"]

SESSIONS_PREFIX = "parlant_sessions_"
CUSTOMERS_PREFIX = "parlant_customers_"
VARIABLES_PREFIX = "parlant_context_variables_"


@dataclass(frozen=True)
class SupabaseStores:
    """The entered stores and the databases under them (for statistics and table names)."""

    sessions: SessionDocumentStore
    customers: CustomerDocumentStore
    variables: ContextVariableDocumentStore
    session_database: SupabaseDocumentDatabase
    customer_database: SupabaseDocumentDatabase
    variable_database: SupabaseDocumentDatabase
    http_client: httpx.Client
    limiter: anyio.CapacityLimiter
    metadata_cache: MetadataCache

    @property
    def databases(self) -> tuple[SupabaseDocumentDatabase, ...]:
        return (self.session_database, self.customer_database, self.variable_database)


@asynccontextmanager
async def supabase_stores(
    settings: SupabaseSettings | None = None,
    *,
    allow_migration: bool = False,
    id_generator: IdGenerator | None = None,
    logger: Logger | logging.Logger | None = None,
    metadata_cache: MetadataCache | None = None,
) -> AsyncIterator[SupabaseStores]:
    """Open the session, customer and context-variable stores on one Supabase project.

    ``settings`` defaults to the environment. ``id_generator`` is shared by the customer and
    context-variable stores (a new ``IdGenerator`` by default).
    """
    settings = settings if settings is not None else SupabaseSettings.from_env()
    log = logger if logger is not None else logging.getLogger("parlant_supabase_sync")
    ids = id_generator if id_generator is not None else IdGenerator()
    cache = (
        metadata_cache
        if metadata_cache is not None
        else MetadataCache(settings.metadata_cache_ttl)
    )
    limiter = anyio.CapacityLimiter(settings.max_workers)
    async with AsyncExitStack() as stack:
        http_client = build_http_client(settings)
        # Closing only drops idle sockets (no I/O wait), so it needs no worker thread.
        stack.callback(http_client.close)

        def database(prefix: str) -> SupabaseDocumentDatabase:
            return SupabaseDocumentDatabase(
                log,
                prefix,
                settings,
                http_client=http_client,
                limiter=limiter,
                metadata_cache=cache,
            )

        session_db = await stack.enter_async_context(database(SESSIONS_PREFIX))
        customer_db = await stack.enter_async_context(database(CUSTOMERS_PREFIX))
        variable_db = await stack.enter_async_context(database(VARIABLES_PREFIX))
        sessions = await stack.enter_async_context(
            SessionDocumentStore(session_db, allow_migration=allow_migration)
        )
        customers = await stack.enter_async_context(
            CustomerDocumentStore(ids, customer_db, allow_migration=allow_migration)
        )
        variables = await stack.enter_async_context(
            ContextVariableDocumentStore(
                ids, variable_db, allow_migration=allow_migration
            )
        )
        yield SupabaseStores(
            sessions=sessions,
            customers=customers,
            variables=variables,
            session_database=session_db,
            customer_database=customer_db,
            variable_database=variable_db,
            http_client=http_client,
            limiter=limiter,
            metadata_cache=cache,
        )
