"""The synchronous core: ``SyncDocumentDatabase`` and ``SyncDocumentCollection``, all I/O.

Every method gives the result Parlant's ``TransientDocumentDatabase`` gives for the same
calls (see :mod:`parlant_supabase_sync.filters` for the documented filter differences), with
as few HTTP round trips as PostgREST allows:

* ``find_one``, ``find`` (up to one page), ``insert_one``, and ``update_one`` (upserts included)
  / ``delete_one`` filtered by ``{"id": {"$eq": …}}``: one request each.
* ``update_one``/``delete_one`` with any other filter: two (the first match's id, then the
  write pinned to that id).
* ``find`` without a limit: one request per page of ``settings.page_size`` documents (keyset
  paging on ``(creation_utc, id)``; a server ``max-rows`` cap below the page size only adds
  pages, it never drops documents).
* Opening a collection: at most one request (``parlant_schema_report``), cached per process.

"First match" (``find_one`` without ``sort`` and its ties, ``update_one``, ``delete_one``) is the
first document in ``(creation_utc, id)`` order; Transient takes the first inserted, and Parlant
leaves the choice unspecified. Documents are expected to hold ``creation_utc`` and ``id`` as
strings, as every Parlant document does.

Every write goes through the generated ``parlant_write`` function with a request id made here,
so a write repeated after a lost answer returns the outcome of its first attempt (exactly once:
see :mod:`parlant_supabase_sync.ddl_functions`). All requests go through
:class:`~parlant_supabase_sync.transport.Transport`; the reads and their paging live in
:mod:`parlant_supabase_sync.paging`, the loader run in :mod:`parlant_supabase_sync.loader`.

The REST API cannot create or drop tables: they come from the generated SQL
(``parlant-supabase-sync sql``). A missing table or function raises :class:`SchemaMissing`
listing everything missing and the command that prints the SQL.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import httpx
from typing_extensions import Self

from . import filters as _filters
from ._types import (
    CollectionIndex,
    Cursor,
    DeleteResult,
    FindResult,
    InsertResult,
    SortDirection,
    UpdateResult,
)
from .cache import MetadataCache, MetadataWrite
from .ddl_functions import RECEIPTS_TABLE, REPORT_FUNCTION, WRITE_FUNCTION
from .errors import FunctionMissing, SchemaMissing, TableMissing
from .filters import Compiled
from .loader import WRITE_CHUNK, Loader, run_loader_once
from .naming import METADATA_COLLECTION, TableNames, table_names, validate_prefix
from .paging import TableReader, count_rows, find_in, read_rows, schema_report
from .rows import ensure_is_total, is_total, row_to_document, validate_document
from .settings import SupabaseSettings
from .transport import (
    Expect,
    OperationStats,
    RequestStats,
    Transport,
    apply_filters,
    apply_order,
)

__all__ = [
    "CollectionMissing",
    "Document",
    "OperationStats",
    "RequestStats",
    "SyncDocumentCollection",
    "SyncDocumentDatabase",
    "apply_filters",
    "apply_order",
    "count_rows",
    "ensure_is_total",
    "read_rows",
    "schema_report",
]

Document = dict[str, Any]


class CollectionMissing(TableMissing, ValueError):
    """``get_collection`` on a collection whose table does not exist (a ``ValueError``, as in
    Parlant's Transient database)."""


# --- per-process state ---------------------------------------------------------------------

# Tables known to exist, per (database, table): a collection open checks at most once per
# process. Missing tables are not remembered, so running the SQL later fixes the next open.
_EXISTING_TABLES: set[tuple[Hashable, str]] = set()
_STATE_LOCK = threading.Lock()
# What a write to a collection other than metadata reports to (stateless, shared).
_NO_WRITE: AbstractContextManager[None] = nullcontext()


class SyncDocumentDatabase:
    """A Parlant document database on Supabase's REST API, synchronous and thread-safe.

    One table per collection, named from ``table_prefix`` (:mod:`parlant_supabase_sync.naming`).
    The HTTP client is created from ``settings`` unless one (or a whole ``transport``) is
    injected; :meth:`close` closes only what this object created.
    """

    def __init__(
        self,
        settings: SupabaseSettings | None = None,
        *,
        table_prefix: str,
        http_client: httpx.Client | None = None,
        metadata_cache: MetadataCache | None = None,
        logger: logging.Logger | None = None,
        transport: Transport | None = None,
    ) -> None:
        if transport is not None:
            settings = transport.settings
        self._settings = settings if settings is not None else SupabaseSettings.from_env()
        self._prefix = validate_prefix(table_prefix, ())
        self._logger = logger if logger is not None else logging.getLogger(__name__)
        self._owns_transport = transport is None
        self._transport = (
            transport
            if transport is not None
            else Transport(self._settings, http_client, logger=self._logger)
        )
        self._cache = (
            metadata_cache
            if metadata_cache is not None
            else MetadataCache(self._settings.metadata_cache_ttl)
        )
        self._db_key = MetadataCache.database_key(self._settings.url, self._settings.db_schema)
        self._collections: dict[str, SyncDocumentCollection] = {}
        self._lock = threading.Lock()

    # lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the transport (and its HTTP client) if this database created it (idempotent)."""
        if self._owns_transport:
            self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"SyncDocumentDatabase(url={self._settings.url!r}, "
            f"schema={self._settings.db_schema!r}, table_prefix={self._prefix!r})"
        )

    @property
    def settings(self) -> SupabaseSettings:
        return self._settings

    @property
    def table_prefix(self) -> str:
        return self._prefix

    @property
    def transport(self) -> Transport:
        """The one send path of this database (shared with whoever injected it)."""
        return self._transport

    @property
    def stats(self) -> RequestStats:
        """Requests and time per operation, for reports."""
        return self._transport.stats

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far (retries included)."""
        return self._transport.stats.total_requests

    @property
    def metadata_cache(self) -> MetadataCache:
        return self._cache

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    def table_for(self, name: str) -> TableNames:
        """The table (and failed-migrations table) behind collection ``name``."""
        return table_names(self._prefix, name)

    # collections ----------------------------------------------------------------------------

    def create_collection(self, name: str, schema: type[Any]) -> SyncDocumentCollection:
        """An empty collection ``name``: like Transient, any existing documents are removed.

        The table itself must exist (the REST API cannot create tables; they come from the
        generated SQL); a missing one raises :class:`SchemaMissing`.
        """
        with self.stats.timed("create_collection"):
            tables = self.table_for(name)
            self._require_tables(name, tables)
            self._delete_all("create_collection", tables.main)
            return self._remember(name, schema, tables)

    def get_collection(
        self, name: str, schema: type[Any], loader: Loader
    ) -> SyncDocumentCollection:
        """The existing collection ``name``; raises ``ValueError`` (:class:`CollectionMissing`)
        when its table does not exist. The loader runs once per process over every document."""
        with self.stats.timed("get_collection"):
            tables = self.table_for(name)
            self._require_tables(name, tables, missing_collection_is_value_error=True)
            collection = self._remember(name, schema, tables)
            collection._run_loader_once(loader)
            return collection

    def get_or_create_collection(
        self, name: str, schema: type[Any], loader: Loader
    ) -> SyncDocumentCollection:
        """The collection ``name`` (its table must exist: it cannot be created over REST).

        The loader runs once per process over every document: a document it returns unchanged
        (the same object) is not rewritten, a migrated one is rewritten with its columns, and
        one it rejects (``None`` or an exception) is copied to the failed-migrations table
        before it is removed from the collection.
        """
        with self.stats.timed("get_or_create_collection"):
            tables = self.table_for(name)
            self._require_tables(name, tables)
            collection = self._remember(name, schema, tables)
            collection._run_loader_once(loader)
            return collection

    def delete_collection(self, name: str) -> None:
        """Remove every document of collection ``name`` (and its failed migrations).

        Idempotent. The tables stay: the REST API cannot drop tables.
        """
        with self.stats.timed("delete_collection"):
            tables = self.table_for(name)
            for table in (tables.main, tables.failed):
                if table is None:
                    continue
                try:
                    self._delete_all("delete_collection", table)
                except TableMissing:
                    pass
            with self._lock:
                self._collections.pop(name, None)

    def _remember(self, name: str, schema: type[Any], tables: TableNames) -> SyncDocumentCollection:
        with self._lock:
            collection = self._collections.get(name)
            if collection is None or collection.schema is not schema:
                collection = SyncDocumentCollection(self, name, schema, tables)
                self._collections[name] = collection
            return collection

    def _delete_all(self, operation: str, table: str) -> None:
        self.write(operation, table, "clear", {})

    def _require_tables(
        self, name: str, tables: TableNames, *, missing_collection_is_value_error: bool = False
    ) -> None:
        needed = [table for table in (tables.main, tables.failed) if table is not None]
        if all((self._db_key, table) in _EXISTING_TABLES for table in needed):
            return
        try:
            report = self.schema_report(needed)
        except FunctionMissing:
            raise SchemaMissing(
                functions=[REPORT_FUNCTION, WRITE_FUNCTION], prefixes=[self._prefix]
            ) from None
        table_report = report.get("tables") or {}
        function_report = report.get("functions") or {}
        missing_tables = [
            table for table in needed if not (table_report.get(table) or {}).get("exists")
        ]
        foreign = [
            table
            for table in needed
            if table not in missing_tables and not (table_report.get(table) or {}).get("adapter")
        ]
        missing_functions = [fn for fn, present in function_report.items() if not present]
        if tables.main in missing_tables and missing_collection_is_value_error:
            raise CollectionMissing(
                f'Collection "{name}" does not exist: table {tables.main} is missing. '
                f"Generate the SQL with `parlant-supabase-sync sql --prefix {self._prefix} "
                "> schema.sql` and run it in the Supabase SQL editor.",
                tables=missing_tables,
                functions=missing_functions,
                prefixes=[self._prefix],
            )
        if report.get("receipts") is False:
            missing_tables.append(RECEIPTS_TABLE)
        if missing_tables or missing_functions:
            raise SchemaMissing(
                tables=missing_tables, functions=missing_functions, prefixes=[self._prefix]
            )
        if foreign:
            raise SchemaMissing(
                f"table(s) {', '.join(foreign)} exist but are not parlant-supabase-sync document "
                "tables (wrong columns or missing table comment). If they were created by the "
                "older adapter's SQL, run the output of `parlant-supabase-sync sql --upgrade`.",
                tables=foreign,
                prefixes=[self._prefix],
            )
        with _STATE_LOCK:
            _EXISTING_TABLES.update((self._db_key, table) for table in needed)

    # requests -------------------------------------------------------------------------------

    def schema_report(self, tables: Sequence[str]) -> dict[str, Any]:
        """``parlant_schema_report`` for ``tables``: one request (see ddl_functions)."""
        return schema_report(self._transport, tables)

    def write(
        self, operation: str, table: str, write: str, args: Mapping[str, Any]
    ) -> dict[str, Any]:
        """One ``parlant_write`` call under a fresh request id; its outcome object.

        The id is made once per write, so every retry of it returns the first outcome instead
        of acting again (exactly once, even when an answer was lost after the commit).
        """
        body = {
            "p_request_id": uuid.uuid4().hex,
            "p_table": table,
            "p_operation": write,
            "p_args": dict(args),
        }
        answer = self._transport.send(
            operation,
            self._transport.rpc_request(WRITE_FUNCTION, body, table=table),
            table=table,
            function=WRITE_FUNCTION,
            expect=Expect.OBJECT,
        )
        outcome: dict[str, Any] = answer.data
        return outcome


class SyncDocumentCollection:
    """One collection (one table); every method is safe to call from several threads."""

    def __init__(
        self, database: SyncDocumentDatabase, name: str, schema: type[Any], tables: TableNames
    ) -> None:
        self._db = database
        self._name = name
        self._schema = schema
        self._tables = tables
        self._table = tables.main
        self._is_metadata = name == METADATA_COLLECTION
        self._reader = TableReader(
            database.transport,
            tables.main,
            page_size=database.settings.page_size,
            logger=database.logger,
        )

    def __repr__(self) -> str:
        return f"SyncDocumentCollection(name={self._name!r}, table={self._table!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def schema(self) -> type[Any]:
        return self._schema

    @property
    def tables(self) -> TableNames:
        return self._tables

    # reads ----------------------------------------------------------------------------------

    def find(
        self,
        filters: Mapping[str, Any],
        limit: int | None = None,
        cursor: Cursor | None = None,
        sort_direction: SortDirection | None = None,
    ) -> FindResult[Any]:
        """Matches ordered by ``(creation_utc, id)`` (ASC by default), after ``cursor``.

        ``total_count`` counts every match after the cursor (ignoring ``limit``); ``has_more``
        says more than ``limit`` remain; without ``limit`` every match is returned.
        """
        with self._db.stats.timed("find"):
            if limit is not None and limit < 0:
                raise ValueError(f"limit must be None or >= 0, got {limit}")
            where = _filters.compile_filter(filters)
            if self._is_metadata and not filters:
                return find_in(self._snapshot(), limit, cursor, sort_direction)
            if where.nothing:
                return FindResult(items=[], total_count=0, has_more=False, next_cursor=None)
            return self._reader.find(where.conditions, limit, cursor, sort_direction)

    def find_one(
        self,
        filters: Mapping[str, Any],
        sort: Sequence[tuple[str, SortDirection]] | None = None,
    ) -> Document | None:
        """The first match: by ``sort`` (document fields, typed) if given, then by
        ``(creation_utc, id)``; None when nothing matches."""
        with self._db.stats.timed("find_one"):
            where = _filters.compile_filter(filters)
            if self._is_metadata and not filters and not sort:
                documents = self._snapshot()
                return documents[0] if documents else None
            if where.nothing:
                return None
            # One row at most matches an id: no order or limit to send.
            pinned = sort is None and _filters.id_pinned(filters) is not None
            order = None if pinned else _filters.compile_order(sort, None)
            limit = None if pinned else 1
            rows, _ = self._reader.select(
                "find_one", where.conditions, order, limit, columns="data"
            )
            return row_to_document(rows[0]) if rows else None

    def count(self, filters: Mapping[str, Any]) -> int:
        """How many documents match ``filters`` (one request)."""
        with self._db.stats.timed("count"):
            where = _filters.compile_filter(filters)
            if where.nothing:
                return 0
            return self._reader.count("count", where.conditions)

    def iter_documents(
        self, filters: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> Iterator[Document]:
        """Every matching document in ``(creation_utc, id)`` order, fetched page by page."""
        where = _filters.compile_filter(filters or {})
        if where.nothing:
            return
        pages = self._reader.pages("iter_documents", where.conditions, None, None, page_size)
        for batch, _ in pages:
            for row in batch:
                yield row_to_document(row)

    def ensure_indexes(self, indexes: Sequence[CollectionIndex]) -> None:
        """A hint only: the indexes come from the generated SQL. Sends no request."""

    # writes ---------------------------------------------------------------------------------

    def insert_one(self, document: Mapping[str, Any]) -> InsertResult:
        """Insert ``document`` (it must have every key of the schema, as in Transient).

        An existing id raises :class:`DuplicateDocument` (a ``ValueError``). A retry after a
        lost answer returns the first attempt's outcome, so it never meets its own document.
        """
        with self._db.stats.timed("insert_one"), self._writing() as write:
            ensure_is_total(document, self._schema)
            validate_document(document)
            self._db.write("insert_one", self._table, "insert", {"document": dict(document)})
            if write is not None:
                write.inserted(dict(document))
            return InsertResult(acknowledged=True)

    def update_one(
        self, filters: Mapping[str, Any], params: Mapping[str, Any], upsert: bool = False
    ) -> UpdateResult[Any]:
        """Merge ``params`` over the first match (shallow, atomic on the server).

        A hit gives ``matched_count=1, modified_count=1`` and the merged document; a miss gives
        0, 0 and None, or with ``upsert`` inserts ``params`` (which must then be a complete
        document) and returns it with counts 0, 0. The upsert is one statement: concurrent
        upserts of one id give one document (the later ones merge into it) and no error.
        """
        with self._db.stats.timed("update_one"), self._writing() as write:
            validate_document(params, "params")
            # Transient checks an upsert's document only when it has to insert it.
            insertable = upsert and is_total(params, self._schema)
            pinned = _filters.id_pinned(filters)
            where = None if pinned is not None else _filters.compile_filter(filters)
            while True:
                target = self._first_match("update_one", pinned, where)
                if target is None and not insertable:
                    break
                outcome = self._db.write(
                    "update_one",
                    self._table,
                    "merge",
                    {"id": target, "params": dict(params), "upsert": insertable},
                )
                document = outcome.get("document")
                if isinstance(document, dict):
                    inserted = bool(outcome.get("inserted"))
                    if write is not None and inserted:
                        write.inserted(document)
                    elif write is not None:
                        write.replaced(target or str(document.get("id")), document)
                    hits = 0 if inserted else 1
                    return UpdateResult(
                        acknowledged=True,
                        matched_count=hits,
                        modified_count=hits,
                        updated_document=dict(params) if inserted else document,
                    )
                if pinned is not None or target is None:
                    break
                # The match was deleted between the two requests: look again.
            if upsert:
                ensure_is_total(params, self._schema)  # raises: nothing matched to merge into
            if write is not None:
                write.unchanged()
            return UpdateResult(
                acknowledged=True, matched_count=0, modified_count=0, updated_document=None
            )

    def delete_one(self, filters: Mapping[str, Any]) -> DeleteResult[Any]:
        """Delete the first match; ``deleted_document`` is the complete deleted document."""
        with self._db.stats.timed("delete_one"), self._writing() as write:
            pinned = _filters.id_pinned(filters)
            where = None if pinned is not None else _filters.compile_filter(filters)
            # Each lost race means another caller removed a match, so this ends.
            while True:
                target = self._first_match("delete_one", pinned, where)
                if target is None:
                    break
                outcome = self._db.write("delete_one", self._table, "delete", {"id": target})
                deleted = outcome.get("deleted")
                if isinstance(deleted, dict):
                    if write is not None:
                        write.deleted(target)
                    return DeleteResult(
                        acknowledged=True, deleted_count=1, deleted_document=deleted
                    )
                if pinned is not None:
                    break
            if write is not None:
                write.unchanged()
            return DeleteResult(acknowledged=True, deleted_count=0, deleted_document=None)

    def insert_many(self, documents: Sequence[Mapping[str, Any]]) -> int:
        """Insert documents in one request per 1,000: each request all or nothing."""
        return self._bulk("insert_many", "insert_many", documents)

    def put_many(self, documents: Sequence[Mapping[str, Any]]) -> int:
        """Write whole documents, replacing any with the same id (one request per 1,000)."""
        return self._bulk("put_many", "put_many", documents)

    # helpers --------------------------------------------------------------------------------

    def _first_match(
        self, operation: str, pinned: str | None, where: Compiled | None
    ) -> str | None:
        """The id an update or delete acts on: the pinned one, else the first match's."""
        if where is None:
            return pinned
        return None if where.nothing else self._reader.first_id(operation, where.conditions)

    def _writing(self) -> AbstractContextManager[MetadataWrite | None]:
        # Metadata writes report their effect so the cached snapshot stays equal to the table.
        if self._is_metadata:
            return self._db.metadata_cache.writing(self._db._db_key, self._table)
        return _NO_WRITE

    def _snapshot(self) -> list[Document]:
        def load() -> list[Document]:
            return [
                row_to_document(row)
                for batch, _ in self._reader.pages("metadata", [], None, None)
                for row in batch
            ]

        return self._db.metadata_cache.documents(self._db._db_key, self._table, load)

    def find_sorted(
        self,
        filters: Mapping[str, Any],
        sort: Sequence[tuple[str, SortDirection]],
        limit: int,
        *,
        after: Mapping[str, Any] | None = None,
        count: bool = False,
    ) -> tuple[list[Document], int | None]:
        """One keyset page of matching documents in ``sort`` order (ties: ``(creation_utc,
        id)`` in the last key's direction), strictly after the document ``after``; and, with
        ``count``, how many match after it. One request, never capped by max-rows."""
        with self._db.stats.timed("find_sorted"):
            where = _filters.compile_filter(filters)
            if where.nothing:
                return [], 0 if count else None
            order = _filters.compile_order(sort, sort[-1][1] if sort else None)
            rows, total = self._reader.sorted_page(
                where.conditions, order, limit, after=after, count=count
            )
            return [row_to_document(row) for row in rows], total

    def _bulk(self, operation: str, write: str, documents: Sequence[Mapping[str, Any]]) -> int:
        written = 0
        with self._db.stats.timed(operation):
            for start in range(0, len(documents), WRITE_CHUNK):
                chunk = [dict(d) for d in documents[start : start + WRITE_CHUNK]]
                for document in chunk:
                    validate_document(document)
                outcome = self._db.write(operation, self._table, write, {"documents": chunk})
                written += int(outcome.get("written") or 0)
        if self._is_metadata:
            self._db.metadata_cache.invalidate(self._db._db_key, self._table)
        return written

    def _run_loader_once(self, loader: Loader) -> None:
        run_loader_once(
            self._db._db_key,
            self._reader,
            self._db.write,
            self._name,
            self._tables,
            loader,
            self._db.logger,
        )
