"""Parlant's stores on Supabase, ready for ``parlant.sdk.Server`` and ``parlant-server``.

Every document store and the embedding cache (one call; ``every_store=True``)::

    import parlant.sdk as p
    from parlant_supabase_sync import supabase_stores

    async with supabase_stores(every_store=True) as stores:
        async with p.Server(nlp_service=..., **stores.server_options()) as server:
            ...

``server_options()`` is the three store constructor arguments Server takes (sessions,
customers, context variables) plus ``configure_container`` and ``initialize_container``, which
put the other stores in the container: agents, tags, guidelines, guideline-tool associations,
relationships, evaluations, the service registry, the document side of the glossary, canned
responses, journeys and capabilities (their vector databases come from ``vector_database``,
Parlant's TransientVectorDatabase by default; they cache embeddings in Supabase, so a restart
does not pay the embedder again).
If you have your own hooks, call ``stores.configure_container(c)`` /
``stores.initialize_container(c)`` from them. ``parlant-server`` uses the same two steps through
``parlant_supabase_sync.parlant_module``.

Only the conversation stores (constructor arguments; engine and tool events reach the new
session store)::

    async with supabase_stores(allow_migration=False) as stores:
        async with p.Server(
            session_store=stores.sessions,
            customer_store=stores.customers,
            variable_store=stores.variables,
        ) as server:
            ...

:func:`supabase_stores` builds one :class:`SupabaseDocumentDatabase` per store, each on its own
table prefix (``parlant_sessions_``, ``parlant_agents_``, …: each store needs its own
``metadata`` table), sharing one HTTP client, one worker-thread limiter and one metadata cache.
Before any store starts, one ``parlant_schema_report`` request checks every table and function
of all the stores: if anything is missing or of an earlier release, one
:class:`~parlant_supabase_sync.errors.SchemaMissing` lists all of it with the one command to run,
and nothing has been written. Then the stores are entered (their migration check runs) before
the block and exited, with the databases and the HTTP client, after it. The Server uses store
instances as they are: it does not enter them and ignores its own ``migrate=`` flag for them,
which is why ``allow_migration`` is given here. The service registry and the four vector stores
need the NLP service (its embedder names their vector collections): they are entered in
``configure_container`` when the container has one (the SDK), else in ``initialize_container``
(``parlant-server`` defines it between the two).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import httpx

try:
    from lagom import Container
    from parlant.core.common import IdGenerator
    from parlant.core.context_variables import ContextVariableDocumentStore, ContextVariableStore
    from parlant.core.customers import CustomerDocumentStore, CustomerStore
    from parlant.core.loggers import Logger
    from parlant.core.nlp.embedding import EmbeddingCache
    from parlant.core.sessions import SessionDocumentStore, SessionStore

    from parlant_supabase_sync.vector_facade import vector_database_factory
    from parlant_supabase_sync.wiring_container import (
        ContainerWiring,
        SupabaseEmbeddingCache,
        VectorDatabaseFactory,
        open_document_stores,
    )
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    if exc.name is None or exc.name.split(".")[0] not in ("parlant", "lagom"):
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
    ConfigurationError,
    FunctionMissing,
    PermissionDenied,
    SchemaMissing,
    SupabaseSyncError,
    sql_command,
)
from parlant_supabase_sync.facade import SupabaseDocumentDatabase
from parlant_supabase_sync.naming import (
    ALL_STORES,
    DEFAULT_STORES,
    PARLANT_STORES,
    all_table_names,
)
from parlant_supabase_sync.readiness import SchemaReport, is_local, run_sql_advice
from parlant_supabase_sync.settings import SupabaseSettings, VectorStoreKind
from parlant_supabase_sync.transport import Transport, build_http_client
from parlant_supabase_sync.vector_ddl import VECTOR_FUNCTION_NAMES, parlant_vector_tables

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
    #: Every opened store's database by store key (`naming.PARLANT_STORES`).
    store_databases: Mapping[str, SupabaseDocumentDatabase] = field(default_factory=dict)
    #: With `every_store=True`: the other entered document stores (Parlant interface → store).
    document_stores: Mapping[type, Any] = field(default_factory=dict)
    embedding_cache: EmbeddingCache | None = None
    wiring: ContainerWiring | None = None

    @property
    def databases(self) -> tuple[SupabaseDocumentDatabase, ...]:
        return tuple(self.store_databases.values()) or (
            self.session_database,
            self.customer_database,
            self.variable_database,
        )

    def server_options(self) -> dict[str, Any]:
        """Keyword arguments for ``parlant.sdk.Server`` putting every opened store (and the
        embedding cache) in place: the three store arguments and the two container hooks."""
        return {
            "session_store": self.sessions,
            "customer_store": self.customers,
            "variable_store": self.variables,
            "configure_container": self.configure_container,
            "initialize_container": self.initialize_container,
        }

    async def configure_container(self, container: Container) -> Container:
        """Define the stores in a Parlant container (before Parlant builds its defaults)."""
        return await self._wiring().configure(container)

    async def initialize_container(self, container: Container) -> None:
        """Finish after Parlant's own set-up: enter the stores that need the NLP service."""
        await self._wiring().initialize(container)

    def _wiring(self) -> ContainerWiring:
        if self.wiring is None:  # pragma: no cover - always set by supabase_stores
            raise RuntimeError("SupabaseStores was not made by supabase_stores()")
        return self.wiring


def check_setup(
    transport: Transport, stores: Iterable[str] = tuple(DEFAULT_STORES), *, vectors: bool = False
) -> None:
    """Check every table and SQL function of the Parlant stores `stores` (keys of
    `naming.PARLANT_STORES`; default: the three conversation stores), and with `vectors` those
    of Parlant's vector stores, with one ``parlant_schema_report`` request; writes nothing.

    Raises one :class:`SchemaMissing` listing everything missing or of an earlier release
    across all stores, with the one command to run and where to run it.
    """
    keys = list(stores)
    by_store = {
        key: all_table_names(PARLANT_STORES[key].prefix, PARLANT_STORES[key].collections)
        for key in keys
    }
    vector_tables = parlant_vector_tables() if vectors else []
    every = set(keys) - set(DEFAULT_STORES)
    prefixes = [ALL_STORES] if every else []
    names = [name for tables in by_store.values() for name in tables] + vector_tables
    settings = transport.settings
    try:
        report = SchemaReport.from_report(schema_report(transport, names), names)
    except FunctionMissing:
        raise _fresh_project(settings, prefixes) from None
    except SupabaseSyncError as exc:
        if exc.code != _UNDEFINED_FUNCTION or isinstance(exc, PermissionDenied):
            raise
        raise _fresh_project(settings, prefixes) from None
    missing = {
        key: [name for name in tables if not report.tables[name].exists]
        for key, tables in by_store.items()
    }
    if vector_tables:
        missing["vector"] = [name for name in vector_tables if not report.tables[name].exists]
    functions = [name for name, ok in report.functions.items() if not ok]
    if vector_tables:
        functions += report.absent_functions(VECTOR_FUNCTION_NAMES)
    outdated = [
        name
        for name, status in report.tables.items()
        if status.exists and status.adapter is False and name not in vector_tables
    ] + report.legacy_functions
    if report.function_grants is None:
        outdated.append(REPORT_FUNCTION)  # it predates the privilege report: the functions are old
    if any(missing.values()) or functions or outdated:
        raise _setup_error(settings, missing, functions, outdated, prefixes)


def _advice(
    settings: SupabaseSettings, *, upgrade: bool, prefixes: Sequence[str], vectors: bool = False
) -> str:
    command = sql_command(prefixes, schema=settings.db_schema, upgrade=upgrade)
    head, _, script = command.rpartition(" > ")
    if vectors and not upgrade:
        # `sql --vectors DIMS` appends the vector stores' SQL (DIMS: the embedder's dimensions).
        head += " --vectors DIMS"
    dims = " (DIMS: your embedder's dimensions, e.g. 1536 or 3072)" if vectors else ""
    advice = run_sql_advice(script, is_local(settings.url))
    return f"Run `{head} > {script}`{dims}, then {advice}"


def _setup_error(
    settings: SupabaseSettings,
    missing: dict[str, list[str]],
    functions: list[str],
    outdated: list[str],
    prefixes: Sequence[str] = (),
) -> SchemaMissing:
    parts = []
    groups = [f"{key} store: {', '.join(tables)}" for key, tables in missing.items() if tables]
    vector_functions = [name for name in functions if name in VECTOR_FUNCTION_NAMES]
    vectors = bool(missing.get("vector")) or bool(vector_functions)
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
        f"{_advice(settings, upgrade=bool(outdated), prefixes=prefixes, vectors=vectors)}.",
        tables=[name for tables in missing.values() for name in tables],
        functions=functions,
        outdated=outdated,
        schema=settings.db_schema,
    )


def _fresh_project(settings: SupabaseSettings, prefixes: Sequence[str] = ()) -> SchemaMissing:
    return SchemaMissing(
        "Parlant's stores were not started and nothing was written: schema "
        f"{settings.db_schema!r} has no parlant-supabase-sync SQL yet (the function "
        f"{REPORT_FUNCTION} is missing: a fresh project?). "
        f"{_advice(settings, upgrade=False, prefixes=prefixes)}; "
        "tables made by the older adapter's SQL need "
        f"`{sql_command(prefixes, schema=settings.db_schema, upgrade=True)}` instead.",
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
    every_store: bool = False,
    vector_store: VectorStoreKind | None = None,
    vector_database: VectorDatabaseFactory | None = None,
) -> AsyncIterator[SupabaseStores]:
    """Open the session, customer and context-variable stores on one Supabase project, and
    with ``every_store=True`` every other Parlant document store and the embedding cache too
    (put into Parlant's container by ``server_options()`` / ``configure_container``).

    ``settings`` defaults to the environment; ``schema`` overrides its database schema
    (``SUPABASE_SCHEMA``; the schema must be exposed by the project's Data API).
    ``id_generator`` is shared by the stores that make ids (a new ``IdGenerator`` by default).
    ``vector_store`` (default: the settings' ``vector_store``, PARLANT_SUPABASE_VECTOR_STORE)
    chooses where the glossary, canned response, journey and capability stores keep their
    vector databases: ``"memory"`` (Parlant's TransientVectorDatabase, as Parlant itself does)
    or ``"supabase"`` (SupabaseVectorDatabase on the same connection; tables from
    ``parlant-supabase-sync sql --vectors DIMS``). ``vector_database`` builds them instead
    (``wiring_container.VectorDatabaseFactory``). Raises
    :class:`SchemaMissing` before anything is written when a table or function of any store
    is missing (see :func:`check_setup`).
    """
    settings = settings if settings is not None else SupabaseSettings.from_env()
    if schema is not None:
        settings = settings.with_schema(schema)
    log = logger if logger is not None else logging.getLogger("parlant_supabase_sync")
    ids = id_generator if id_generator is not None else IdGenerator()
    cache = (
        metadata_cache if metadata_cache is not None else MetadataCache(settings.metadata_cache_ttl)
    )
    if vector_store is not None and not every_store:
        raise ConfigurationError(
            "vector_store applies to the vector stores, which only every_store=True opens: "
            "pass every_store=True too, or drop vector_store"
        )
    limiter = anyio.CapacityLimiter(settings.max_workers)
    keys = list(PARLANT_STORES if every_store else DEFAULT_STORES)
    async with AsyncExitStack() as stack:
        http_client = build_http_client(settings)
        # Closing only drops idle sockets (no I/O wait), so it needs no worker thread.
        stack.callback(http_client.close)
        databases: dict[str, SupabaseDocumentDatabase] = {}
        for key in keys:
            databases[key] = await stack.enter_async_context(
                SupabaseDocumentDatabase(
                    log,
                    PARLANT_STORES[key].prefix,
                    settings,
                    http_client=http_client,
                    limiter=limiter,
                    metadata_cache=cache,
                )
            )
        transport = databases["sessions"].core.transport
        on_supabase = (vector_store or settings.vector_store) == "supabase"
        vectors = every_store and vector_database is None and on_supabase
        await anyio.to_thread.run_sync(
            functools.partial(check_setup, transport, keys, vectors=vectors), limiter=limiter
        )
        sessions, customers, variables = await _conversation_stores(
            stack, databases, ids, allow_migration
        )
        others: dict[type, Any] = {}
        embedding_cache: EmbeddingCache | None = None
        if every_store:
            others = await open_document_stores(stack, databases, ids, allow_migration)
            embedding_cache = SupabaseEmbeddingCache(databases["cache_embeddings"])
            if vectors:
                vector_database = vector_database_factory(transport, limiter=limiter)
        wiring = ContainerWiring(
            stack=stack,
            databases=databases,
            conversation={
                SessionStore: sessions,
                CustomerStore: customers,
                ContextVariableStore: variables,
            },
            document_stores=others,
            embedding_cache=embedding_cache,
            ids=ids,
            allow_migration=allow_migration,
            vector_database=vector_database,
        )
        yield SupabaseStores(
            sessions=sessions,
            customers=customers,
            variables=variables,
            session_database=databases["sessions"],
            customer_database=databases["customers"],
            variable_database=databases["context_variables"],
            http_client=http_client,
            limiter=limiter,
            metadata_cache=cache,
            store_databases=databases,
            document_stores=others,
            embedding_cache=embedding_cache,
            wiring=wiring,
        )


async def _conversation_stores(
    stack: AsyncExitStack,
    databases: Mapping[str, SupabaseDocumentDatabase],
    ids: IdGenerator,
    allow_migration: bool,
) -> tuple[SessionDocumentStore, CustomerDocumentStore, ContextVariableDocumentStore]:
    sessions = await stack.enter_async_context(
        SessionDocumentStore(databases["sessions"], allow_migration=allow_migration)
    )
    customers = await stack.enter_async_context(
        CustomerDocumentStore(ids, databases["customers"], allow_migration=allow_migration)
    )
    variables = await stack.enter_async_context(
        ContextVariableDocumentStore(
            ids, databases["context_variables"], allow_migration=allow_migration
        )
    )
    return sessions, customers, variables
