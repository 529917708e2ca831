"""Parlant's async ``DocumentDatabase`` over the synchronous core, one thread hop per call.

All I/O and all logic live in :mod:`parlant_supabase_sync.core`. This module only moves each
call to a worker thread through :meth:`SupabaseDocumentDatabase._run`, the single crossing point:
``anyio.to_thread.run_sync`` with a ``CapacityLimiter``. It works under asyncio and trio.

Cancellation: a cancelled caller waits for its worker thread to finish (the request is not
abandoned), so a write is either applied completely by the server or not sent, and no limiter
token or thread is leaked.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar, cast

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx
from parlant.core.loggers import Logger
from parlant.core.persistence.common import (
    Cursor,
    MigrationRequired,
    ServerOutdated,
    SortDirection,
    Where,
)
from parlant.core.persistence.document_database import (
    BaseDocument,
    CollectionIndex,
    CollectionSort,
    DeleteResult,
    DocumentCollection,
    DocumentDatabase,
    FindResult,
    InsertResult,
    TDocument,
    UpdateResult,
)
from typing_extensions import Self, override

from parlant_supabase_sync.cache import MetadataCache
from parlant_supabase_sync.core import SyncDocumentCollection, SyncDocumentDatabase
from parlant_supabase_sync.errors import ConfigurationError
from parlant_supabase_sync.naming import foreign_store_error
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.transport import pool_size

__all__ = ["SupabaseDocumentCollection", "SupabaseDocumentDatabase"]

T = TypeVar("T")


class _ParlantLogHandler(logging.Handler):
    """Forwards the core's stdlib log records to a Parlant ``Logger``."""

    def __init__(self, logger: Logger) -> None:
        super().__init__(logging.DEBUG)
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.CRITICAL:
                self._logger.critical(message)
            elif record.levelno >= logging.ERROR:
                self._logger.error(message)
            elif record.levelno >= logging.WARNING:
                self._logger.warning(message)
            elif record.levelno >= logging.INFO:
                self._logger.info(message)
            else:
                self._logger.debug(message)
        except Exception:  # noqa: BLE001 - logging must never break a database call
            self.handleError(record)


def _stdlib_logger(logger: Logger | logging.Logger) -> logging.Logger:
    if isinstance(logger, logging.Logger):
        return logger
    # Not registered with logging's manager: one per database, gone with it.
    adapted = logging.Logger("parlant_supabase_sync")  # noqa: LOG001 - deliberately unregistered
    adapted.setLevel(logging.DEBUG)
    adapted.propagate = False
    adapted.addHandler(_ParlantLogHandler(logger))
    return adapted


class SupabaseDocumentDatabase(DocumentDatabase):
    """A Parlant document database stored in Supabase through its REST API.

    ``settings`` defaults to the environment (``SUPABASE_URL``, ``SUPABASE_KEY``…). Pass the same
    ``http_client``, ``limiter`` and ``metadata_cache`` to every database of one application to
    share connections, worker threads and cached metadata (see :mod:`parlant_supabase_sync.wiring`).
    Use it as ``async with``; leaving the block closes the HTTP client if this database created it.
    """

    def __init__(
        self,
        logger: Logger | logging.Logger,
        table_prefix: str,
        settings: SupabaseSettings | None = None,
        *,
        http_client: httpx.Client | None = None,
        limiter: anyio.CapacityLimiter | None = None,
        metadata_cache: MetadataCache | None = None,
    ) -> None:
        settings = settings if settings is not None else SupabaseSettings.from_env()
        self._core = SyncDocumentDatabase(
            settings,
            table_prefix=table_prefix,
            http_client=http_client,
            metadata_cache=metadata_cache,
            logger=_stdlib_logger(logger),
        )
        if limiter is not None:
            try:
                _check_limiter(limiter, self._core.transport.http)
            except ConfigurationError:
                self._core.close()  # closes only the HTTP client it made itself
                raise
        self._limiter = (
            limiter if limiter is not None else anyio.CapacityLimiter(settings.max_workers)
        )

    @property
    def core(self) -> SyncDocumentDatabase:
        """The synchronous database doing the work (request statistics, table names)."""
        return self._core

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        return self._limiter

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        # The hop's options (benchmarks/overhead.py --hops): the arguments passed through (no
        # partial) cost least of the correct ones; abandon_on_cancel=True saves a little more
        # but would hand the limiter token back while the thread still runs a request.
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Shielded: a cancelled owner must still release its connections.
        with anyio.CancelScope(shield=True):
            await self._run(self._core.close)
        foreign = _foreign_store(self._core.table_prefix, exc_value)
        if foreign is not None:
            raise foreign from exc_value

    @override
    async def create_collection(
        self,
        name: str,
        schema: type[TDocument],
    ) -> SupabaseDocumentCollection[TDocument]:
        return SupabaseDocumentCollection(
            self, await self._run(self._core.create_collection, name, schema)
        )

    @override
    async def get_collection(
        self,
        name: str,
        schema: type[TDocument],
        document_loader: Callable[[BaseDocument], Awaitable[TDocument | None]],
    ) -> SupabaseDocumentCollection[TDocument]:
        return SupabaseDocumentCollection(
            self,
            await self._run(self._core.get_collection, name, schema, _in_loop(document_loader)),
        )

    @override
    async def get_or_create_collection(
        self,
        name: str,
        schema: type[TDocument],
        document_loader: Callable[[BaseDocument], Awaitable[TDocument | None]],
    ) -> SupabaseDocumentCollection[TDocument]:
        return SupabaseDocumentCollection(
            self,
            await self._run(
                self._core.get_or_create_collection,
                name,
                schema,
                _in_loop(document_loader),
            ),
        )

    @override
    async def delete_collection(self, name: str) -> None:
        await self._run(self._core.delete_collection, name)


def _check_limiter(limiter: anyio.CapacityLimiter, http: httpx.Client) -> None:
    # A worker without a pooled connection waits for one and fails with a pool timeout.
    size = pool_size(http)
    if size is not None and limiter.total_tokens > size:
        raise ConfigurationError(
            f"the limiter allows {limiter.total_tokens:g} concurrent calls but the HTTP pool has "
            f"{size} connections; pass anyio.CapacityLimiter({size}) or fewer, or a client "
            f"with httpx.Limits(max_connections={int(limiter.total_tokens)}) or more"
        )


def _foreign_store(prefix: str, error: BaseException | None) -> ConfigurationError | None:
    """The clear error behind Parlant's bare ServerOutdated/MigrationRequired when a store was
    opened on another store's prefix (it read that store's version from `metadata`).

    The store is named by `_store_name` of Parlant's DocumentStoreMigrationHelper, whose frame
    is on the exception's traceback; None when it is not there or the prefix fits the store.
    """
    if not isinstance(error, (ServerOutdated, MigrationRequired)):
        return None
    trace = error.__traceback__
    while trace is not None:
        store = getattr(trace.tb_frame.f_locals.get("self"), "_store_name", None)
        if isinstance(store, str):
            return foreign_store_error(prefix, store)
        trace = trace.tb_next
    return None


def _in_loop(
    document_loader: Callable[[BaseDocument], Awaitable[TDocument | None]],
) -> Callable[[BaseDocument], TDocument | None]:
    # The core calls the loader from its worker thread; the coroutine runs back on the event loop.
    # mypy's partial plugin cannot follow anyio's TypeVarTuple signature.
    return functools.partial(anyio.from_thread.run, document_loader)  # type: ignore[arg-type]


class SupabaseDocumentCollection(DocumentCollection[TDocument]):
    """One Parlant collection (one table); every method is one hop to the core collection."""

    def __init__(self, database: SupabaseDocumentDatabase, core: SyncDocumentCollection) -> None:
        self._database = database
        self._core = core

    @property
    def core(self) -> SyncDocumentCollection:
        return self._core

    @override
    async def find(
        self,
        filters: Where,
        limit: int | None = None,
        cursor: Cursor | None = None,
        sort_direction: SortDirection | None = None,
    ) -> FindResult[TDocument]:
        return cast(
            FindResult[TDocument],
            await self._database._run(self._core.find, filters, limit, cursor, sort_direction),
        )

    @override
    async def find_one(
        self,
        filters: Where,
        sort: CollectionSort | None = None,
    ) -> TDocument | None:
        return cast(
            "TDocument | None",
            await self._database._run(self._core.find_one, filters, sort),
        )

    @override
    async def ensure_indexes(self, indexes: Sequence[CollectionIndex]) -> None:
        await self._database._run(self._core.ensure_indexes, indexes)

    @override
    async def insert_one(self, document: TDocument) -> InsertResult:
        return await self._database._run(self._core.insert_one, document)

    @override
    async def update_one(
        self,
        filters: Where,
        params: TDocument,
        upsert: bool = False,
    ) -> UpdateResult[TDocument]:
        return cast(
            UpdateResult[TDocument],
            await self._database._run(self._core.update_one, filters, params, upsert),
        )

    @override
    async def delete_one(self, filters: Where) -> DeleteResult[TDocument]:
        return cast(
            DeleteResult[TDocument],
            await self._database._run(self._core.delete_one, filters),
        )
