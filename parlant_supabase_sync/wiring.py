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
one metadata cache. Before any store starts, one ``parlant_schema_report`` request checks every
table and function of all three stores: if anything is missing or of an earlier release, one
:class:`~parlant_supabase_sync.errors.SchemaMissing` lists all of it with the one command to run,
and nothing has been written. Then the stores are entered (their migration check runs) before
the block and exited, with the databases and the HTTP client, after it. The Server uses store instances as they
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

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.to_thread
import httpx

try:
    from parlant.core.common import IdGenerator
    from parlant.core.context_variables import ContextVariableDocumentStore
    from parlant.core.customers import CustomerDocumentStore
    from parlant.core.loggers import Logger
    from parlant.core.sessions import SessionDocumentStore
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    if exc.name is None or exc.name.split(".")[0] != "parlant":
        raise
    raise ModuleNotFoundError(
        "parlant_supabase_sync.wiring needs Parlant: install the extra with "
        "pip install 'parlant-supabase-sync[parlant]'",
        name=exc.name,
    ) from None

from parlant_supabase_sync.cache import MetadataCache
from parlant_supabase_sync.core import schema_report
from parlant_supabase_sync.ddl_functions import RECEIPTS_TABLE, REPORT_FUNCTION
from parlant_supabase_sync.errors import (
    FunctionMissing,
    PermissionDenied,
    SchemaMissing,
    SupabaseSyncError,
    sql_command,
)
from parlant_supabase_sync.facade import SupabaseDocumentDatabase
from parlant_supabase_sync.naming import DEFAULT_STORES, all_table_names
from parlant_supabase_sync.readiness import SchemaReport, is_local, run_sql_advice
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.transport import Transport, build_http_client

__all__ = ["SupabaseStores", "check_setup", "supabase_stores"]

# SQLSTATE undefined_function: the report function was dropped, the schema cache not yet reloaded.
_UNDEFINED_FUNCTION = "42883"


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


def check_setup(transport: Transport) -> None:
    """Check every table and SQL function of Parlant's three stores with one
    ``parlant_schema_report`` request; writes nothing.

    Raises one :class:`SchemaMissing` listing everything missing or of an earlier release
    across all stores, with the one command to run and where to run it.
    """
    by_store = {
        key: all_table_names(spec.prefix, spec.collections)
        for key, spec in DEFAULT_STORES.items()
    }
    names = [name for tables in by_store.values() for name in tables]
    settings = transport.settings
    try:
        report = SchemaReport.from_report(schema_report(transport, names), names)
    except FunctionMissing:
        raise _fresh_project(settings) from None
    except SupabaseSyncError as exc:
        if exc.code != _UNDEFINED_FUNCTION or isinstance(exc, PermissionDenied):
            raise
        raise _fresh_project(settings) from None
    missing = {
        key: [name for name in tables if not report.tables[name].exists]
        for key, tables in by_store.items()
    }
    functions = [name for name, ok in report.functions.items() if not ok]
    outdated = [
        name for name, status in report.tables.items() if status.exists and status.adapter is False
    ] + report.legacy_functions
    if report.function_grants is None:
        outdated.append(REPORT_FUNCTION)  # it predates the privilege report: the functions are old
    if any(missing.values()) or functions or outdated:
        raise _setup_error(settings, missing, functions, outdated)


def _advice(settings: SupabaseSettings, *, upgrade: bool) -> str:
    command = sql_command(schema=settings.db_schema, upgrade=upgrade)
    script = command.rpartition("> ")[2]
    return f"Run `{command}`, then {run_sql_advice(script, is_local(settings.url))}"


def _setup_error(
    settings: SupabaseSettings,
    missing: dict[str, list[str]],
    functions: list[str],
    outdated: list[str],
) -> SchemaMissing:
    parts = []
    groups = [f"{key} store: {', '.join(tables)}" for key, tables in missing.items() if tables]
    if RECEIPTS_TABLE in functions:
        groups.append(f"the functions' table: {RECEIPTS_TABLE}")
    if groups:
        parts.append(f"missing tables ({'; '.join(groups)})")
    sql_functions = [name for name in functions if name != RECEIPTS_TABLE]
    if sql_functions:
        parts.append(f"missing SQL functions ({', '.join(sql_functions)})")
    if outdated:
        parts.append(
            f"objects of an earlier release or the older adapter's SQL ({', '.join(outdated)})"
        )
    return SchemaMissing(
        f"Parlant's stores were not started and nothing was written: schema "
        f"{settings.db_schema!r} has {'; '.join(parts)}. "
        f"{_advice(settings, upgrade=bool(outdated))}.",
        tables=[name for tables in missing.values() for name in tables],
        functions=functions,
        outdated=outdated,
        schema=settings.db_schema,
    )


def _fresh_project(settings: SupabaseSettings) -> SchemaMissing:
    return SchemaMissing(
        "Parlant's stores were not started and nothing was written: schema "
        f"{settings.db_schema!r} has no parlant-supabase-sync SQL yet (the function "
        f"{REPORT_FUNCTION} is missing: a fresh project?). {_advice(settings, upgrade=False)}; "
        "tables made by the older adapter's SQL need "
        f"`{sql_command(schema=settings.db_schema, upgrade=True)}` instead.",
        functions=[REPORT_FUNCTION],
        schema=settings.db_schema,
    )


@asynccontextmanager
async def supabase_stores(
    settings: SupabaseSettings | None = None,
    *,
    schema: str | None = None,
    allow_migration: bool = False,
    id_generator: IdGenerator | None = None,
    logger: Logger | logging.Logger | None = None,
    metadata_cache: MetadataCache | None = None,
) -> AsyncIterator[SupabaseStores]:
    """Open the session, customer and context-variable stores on one Supabase project.

    ``settings`` defaults to the environment; ``schema`` overrides its database schema
    (``SUPABASE_SCHEMA``; the schema must be exposed by the project's Data API).
    ``id_generator`` is shared by the customer and context-variable stores (a new
    ``IdGenerator`` by default). Raises :class:`SchemaMissing` before anything is written
    when a table or function of any store is missing (see :func:`check_setup`).
    """
    settings = settings if settings is not None else SupabaseSettings.from_env()
    if schema is not None:
        settings = settings.with_schema(schema)
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

        async def database(store: str) -> SupabaseDocumentDatabase:
            return await stack.enter_async_context(
                SupabaseDocumentDatabase(
                    log,
                    DEFAULT_STORES[store].prefix,
                    settings,
                    http_client=http_client,
                    limiter=limiter,
                    metadata_cache=cache,
                )
            )

        session_db = await database("sessions")
        customer_db = await database("customers")
        variable_db = await database("context_variables")
        await anyio.to_thread.run_sync(
            functools.partial(check_setup, session_db.core.transport), limiter=limiter
        )
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
