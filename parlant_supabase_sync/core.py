"""The synchronous core: ``SyncDocumentDatabase`` and ``SyncDocumentCollection``, all I/O.

Every method gives the result Parlant's ``TransientDocumentDatabase`` gives for the same
calls (see :mod:`parlant_supabase_sync.filters` for the documented filter differences), with
as few HTTP round trips as PostgREST allows:

* ``find_one``, ``find`` (up to one page), ``insert_one``, and ``update_one``/``delete_one``
  filtered by ``{"id": {"$eq": …}}``: one request each.
* ``update_one``/``delete_one`` with any other filter: two (the first match's id, then the
  write pinned to that id); an upsert that misses: two.
* ``find`` without a limit: one request per page of ``settings.page_size`` documents (keyset
  paging on ``(creation_utc, id)``; a server ``max-rows`` cap below the page size only adds
  pages, it never drops documents).
* Opening a collection: at most one request (``parlant_schema_report``), cached per process.

"First match" (``find_one`` without ``sort`` and its ties, ``update_one``, ``delete_one``) is the
first document in ``(creation_utc, id)`` order; Transient takes the first inserted, and Parlant
leaves the choice unspecified. Documents are expected to hold ``creation_utc`` and ``id`` as
strings, as every Parlant document does.

The REST API cannot create or drop tables: they come from the generated SQL
(``parlant-supabase-sync sql``). A missing table or function raises :class:`SchemaMissing`
listing everything missing and the command that prints the SQL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar, cast

import httpx
from postgrest.exceptions import APIError
from postgrest.types import CountMethod, ReturnMethod
from typing_extensions import Self, get_type_hints

from . import filters as _filters
from ._types import (
    CollectionIndex,
    Cursor,
    DeleteResult,
    FindResult,
    InsertResult,
    ObjectId,
    SortDirection,
    UpdateResult,
)
from .cache import MetadataCache, MetadataWrite
from .client import (
    build_http_client,
    build_postgrest_client,
    disable_builder_retry,
    last_status,
    post_rpc,
    record_statuses,
    reset_status,
    rpc_objects_supported,
)
from .errors import (
    DuplicateDocument,
    FunctionMissing,
    SchemaMissing,
    SupabaseSyncError,
    TableMissing,
    from_api_error,
    from_transport_error,
)
from .naming import METADATA_COLLECTION, TableNames, table_names, validate_prefix
from .retry import call_with_retry
from .rows import document_to_row, row_to_document, validate_document
from .settings import SupabaseSettings

__all__ = [
    "CollectionMissing",
    "OperationStats",
    "RequestStats",
    "SyncDocumentCollection",
    "SyncDocumentDatabase",
    "ensure_is_total",
]

T = TypeVar("T")
Document = dict[str, Any]
Loader = Callable[[Document], "Document | None"]

MERGE_FUNCTION = "parlant_merge_document"
REPORT_FUNCTION = "parlant_schema_report"
_ROW_COLUMNS = "id,creation_utc,data"
# Typed Any: postgrest's StrEnums are unknown to mypy when it checks for Python 3.10.
_MINIMAL: Any = ReturnMethod.minimal
_REPRESENTATION: Any = ReturnMethod.representation
_EXACT: Any = CountMethod.exact
# Ids per `in.(…)` list in one URL; ids are short, so this stays far below gateway URL limits.
_IN_CHUNK = 200


class CollectionMissing(TableMissing, ValueError):
    """``get_collection`` on a collection whose table does not exist (a ``ValueError``, as in
    Parlant's Transient database)."""


def ensure_is_total(document: Mapping[str, Any], schema: type[Any]) -> None:
    """Raise ``TypeError`` unless ``document`` has every key annotated in ``schema``.

    The same check (and message) as Parlant's ``ensure_is_total``, without importing parlant.
    """
    required_keys = get_type_hints(schema).keys()
    missing_keys = [key for key in required_keys if key not in document]
    if missing_keys:
        raise TypeError(
            f"Provided TypedDict '{schema.__qualname__}' is missing required keys: "
            f"{missing_keys}. Expected at least the keys: {list(required_keys)}."
        )


# --- request statistics --------------------------------------------------------------------


@dataclass(frozen=True)
class OperationStats:
    """Calls of one operation, the HTTP requests they sent, and their total wall time."""

    calls: int
    requests: int
    seconds: float


class RequestStats:
    """Requests and time per operation (``find``, ``insert_one``, …), thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}
        self._requests: dict[str, int] = {}
        self._seconds: dict[str, float] = {}
        self._current = threading.local()

    def record_request(self, operation: str) -> None:
        """Count one HTTP request, under the public operation in progress on this thread."""
        current = getattr(self._current, "operation", None)
        name = current or operation
        with self._lock:
            self._requests[name] = self._requests.get(name, 0) + 1

    @contextmanager
    def timed(self, operation: str) -> Iterator[None]:
        """Time one call of ``operation``; requests sent meanwhile are counted under it."""
        outer = getattr(self._current, "operation", None)
        if outer is None:
            self._current.operation = operation
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            if outer is None:
                self._current.operation = None
                with self._lock:
                    self._calls[operation] = self._calls.get(operation, 0) + 1
                    self._seconds[operation] = self._seconds.get(operation, 0.0) + elapsed

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self._requests.values())

    def snapshot(self) -> dict[str, OperationStats]:
        with self._lock:
            names = sorted(set(self._calls) | set(self._requests))
            return {
                name: OperationStats(
                    self._calls.get(name, 0),
                    self._requests.get(name, 0),
                    self._seconds.get(name, 0.0),
                )
                for name in names
            }

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._requests.clear()
            self._seconds.clear()


# --- per-process state ---------------------------------------------------------------------

# Tables known to exist, per (database, table): a collection open checks at most once per
# process. Missing tables are not remembered, so running the SQL later fixes the next open.
_EXISTING_TABLES: set[tuple[str, str]] = set()
_LOADED: set[tuple[str, str]] = set()
_LOAD_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_STATE_LOCK = threading.Lock()


def _load_lock(key: tuple[str, str]) -> threading.Lock:
    with _STATE_LOCK:
        return _LOAD_LOCKS.setdefault(key, threading.Lock())


def _now_utc() -> str:
    return datetime.now(timezone.utc).isoformat()


def _find_in(
    documents: list[Document],
    limit: int | None,
    cursor: Cursor | None,
    direction: SortDirection | None,
) -> FindResult[Any]:
    """Transient's find over a snapshot already in ``(creation_utc, id)`` ASC order."""
    descending = direction == SortDirection.DESC
    if descending:
        documents = documents[::-1]
    if cursor is not None:
        key = (str(cursor.creation_utc), str(cursor.id))

        def after(doc: Document) -> bool:
            own = (str(doc.get("creation_utc", "")), str(doc.get("id", "")))
            return own < key if descending else own > key

        documents = [doc for doc in documents if after(doc)]
    total = len(documents)
    if limit is not None and total > limit:
        items = documents[:limit]
        next_cursor = (
            Cursor(
                creation_utc=str(items[-1].get("creation_utc", "")),
                id=ObjectId(str(items[-1].get("id", ""))),
            )
            if items
            else None
        )
        return FindResult(items=items, total_count=total, has_more=True, next_cursor=next_cursor)
    return FindResult(items=documents, total_count=total, has_more=False, next_cursor=None)


class SyncDocumentDatabase:
    """A Parlant document database on Supabase's REST API, synchronous and thread-safe.

    One table per collection, named from ``table_prefix`` (:mod:`parlant_supabase_sync.naming`).
    The HTTP client is created from ``settings`` unless one is injected; :meth:`close` closes
    it only if this object created it.
    """

    def __init__(
        self,
        settings: SupabaseSettings | None = None,
        *,
        table_prefix: str,
        http_client: httpx.Client | None = None,
        metadata_cache: MetadataCache | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._settings = settings if settings is not None else SupabaseSettings.from_env()
        self._prefix = validate_prefix(table_prefix, ())
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else build_http_client(self._settings)
        if not self._owns_http:
            record_statuses(self._http)
        self._pg = build_postgrest_client(self._settings, self._http)
        self._cache = (
            metadata_cache
            if metadata_cache is not None
            else MetadataCache(self._settings.metadata_cache_ttl)
        )
        self._db_key = MetadataCache.database_key(self._settings.url, self._settings.db_schema)
        self._logger = logger if logger is not None else logging.getLogger(__name__)
        self._stats = RequestStats()
        self._collections: dict[str, SyncDocumentCollection] = {}
        self._lock = threading.Lock()
        self._closed = False

    # lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP client if this database created it (idempotent)."""
        if not self._closed:
            self._closed = True
            if self._owns_http:
                self._http.close()

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
    def stats(self) -> RequestStats:
        """Requests and time per operation, for reports."""
        return self._stats

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far (retries included)."""
        return self._stats.total_requests

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
        with self._stats.timed("create_collection"):
            tables = self.table_for(name)
            self._require_tables(name, tables)
            self._delete_all("create_collection", tables.main)
            return self._remember(name, schema, tables)

    def get_collection(
        self, name: str, schema: type[Any], loader: Loader
    ) -> SyncDocumentCollection:
        """The existing collection ``name``; raises ``ValueError`` (:class:`CollectionMissing`)
        when its table does not exist. The loader runs once per process over every document."""
        with self._stats.timed("get_collection"):
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
        with self._stats.timed("get_or_create_collection"):
            tables = self.table_for(name)
            self._require_tables(name, tables)
            collection = self._remember(name, schema, tables)
            collection._run_loader_once(loader)
            return collection

    def delete_collection(self, name: str) -> None:
        """Remove every document of collection ``name`` (and its failed migrations).

        Idempotent. The tables stay: the REST API cannot drop tables.
        """
        with self._stats.timed("delete_collection"):
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
        # pg-safeupdate refuses an unfiltered DELETE; `id=not.is.null` matches every row.
        self._send(
            operation,
            table,
            lambda: self._pg.table(table)
            .delete(returning=_MINIMAL)
            .filter("id", "not.is", "null"),
            retry=True,
        )

    def _require_tables(
        self, name: str, tables: TableNames, *, missing_collection_is_value_error: bool = False
    ) -> None:
        needed = [table for table in (tables.main, tables.failed) if table is not None]
        if all((self._db_key, table) in _EXISTING_TABLES for table in needed):
            return
        try:
            report = self._retry(
                "schema_report",
                None,
                lambda _: self._rpc("schema_report", REPORT_FUNCTION, {"p_tables": needed}),
            )
        except FunctionMissing:
            raise SchemaMissing(
                functions=[REPORT_FUNCTION, MERGE_FUNCTION], prefixes=[self._prefix]
            ) from None
        table_report = report.get("tables", {}) if isinstance(report, Mapping) else {}
        function_report = report.get("functions", {}) if isinstance(report, Mapping) else {}
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

    def _send(
        self,
        operation: str,
        table: str | None,
        build: Callable[[], Any],
        *,
        retry: bool,
        check: Callable[[int, SupabaseSyncError], Any] | None = None,
    ) -> Any:
        """Execute the builder made by ``build()``; return the response data.

        Failures are mapped through :mod:`.errors`. With ``retry``, connection errors and
        502/503/504 are retried per the settings' policy; ``check(attempt, error)`` may turn
        an error on a repeated attempt into a result (e.g. an insert meeting its own row).
        """

        def attempt(number: int) -> Any:
            try:
                return self._execute(operation, table, build())
            except SupabaseSyncError as error:
                if check is not None and number > 0:
                    return check(number, error)
                raise

        if not retry:
            return attempt(0)
        return self._retry(operation, table, attempt)

    def _retry(self, operation: str, table: str | None, send: Callable[[int], T]) -> T:
        """``send(attempt)`` under the settings' retry policy, logging each retry."""

        def log_retry(number: int, error: SupabaseSyncError, delay: float) -> None:
            self._logger.warning(
                "parlant-supabase-sync: %s on %s failed (%s); retry %d in %.2fs",
                operation,
                table or "rpc",
                type(error).__name__,
                number,
                delay,
            )

        return call_with_retry(self._settings.retry, send, on_retry=log_retry)

    def _rpc(self, operation: str, function: str, body: Mapping[str, Any]) -> Any:
        """Call an adapter SQL function (one request); its JSON result, ``None`` for null."""
        if rpc_objects_supported():
            return self._execute(operation, None, self._pg.rpc(function, cast(Any, body)))
        if self._closed:
            raise RuntimeError("this SyncDocumentDatabase is closed")
        self._stats.record_request(operation)
        try:
            response = post_rpc(self._http, self._settings, function, body)
        except httpx.TransportError as exc:
            raise from_transport_error(exc) from None
        try:
            payload = response.json() if response.content else None
        except ValueError:
            payload = None
        if response.is_success:
            return payload
        error_body = payload if isinstance(payload, Mapping) else None
        raise from_api_error(error_body, response.status_code)

    def _execute(self, operation: str, table: str | None, builder: Any) -> Any:
        return self._execute_response(operation, table, builder).data

    def _execute_response(self, operation: str, table: str | None, builder: Any) -> Any:
        if self._closed:
            raise RuntimeError("this SyncDocumentDatabase is closed")
        disable_builder_retry(builder)
        self._stats.record_request(operation)
        reset_status()
        try:
            return builder.execute()
        except APIError as exc:
            raise self._api_error(exc, table) from None
        except httpx.TransportError as exc:
            raise from_transport_error(exc) from None

    @staticmethod
    def _api_error(exc: APIError, table: str | None) -> SupabaseSyncError:
        raw = exc.json() if callable(getattr(exc, "json", None)) else {}
        body: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {}
        status = last_status()
        code = body.get("code")
        if isinstance(code, str) and code.isdigit() and len(code) == 3:
            # postgrest-py puts the HTTP status in `code` when the body was not PostgREST JSON.
            status = status if status is not None else int(code)
            body["code"] = None
        return from_api_error(body, status, table=table)


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
            params = _filters.encode_where(filters)
            if self._is_metadata and not filters:
                return _find_in(self._snapshot(), limit, cursor, sort_direction)
            return self._find(filters, params, limit, cursor, sort_direction)

    def _find(
        self,
        filters: Mapping[str, Any],
        params: list[tuple[str, str]],
        limit: int | None,
        cursor: Cursor | None,
        sort_direction: SortDirection | None,
    ) -> FindResult[Any]:
        if _filters.matches_nothing(filters):
            return FindResult(items=[], total_count=0, has_more=False, next_cursor=None)
        if cursor is not None:
            params = [*params, _filters.encode_cursor(cursor, sort_direction)]
        if limit == 0:
            matches = self._count("find", params)
            return FindResult(
                items=[], total_count=matches, has_more=matches > 0, next_cursor=None
            )
        rows: list[Document] = []
        total: int | None = None
        for batch, count in self._pages("find", params, sort_direction, limit):
            if total is None:
                total = count
            rows.extend(batch)
        items = [row_to_document(row) for row in rows]
        total_count = total if total is not None else len(items)
        has_more = limit is not None and total_count > limit
        next_cursor = None
        if has_more and items:
            last = items[-1]
            next_cursor = Cursor(
                creation_utc=str(last.get("creation_utc", "")),
                id=ObjectId(str(last.get("id", ""))),
            )
        return FindResult(
            items=items, total_count=total_count, has_more=has_more, next_cursor=next_cursor
        )

    def find_one(
        self,
        filters: Mapping[str, Any],
        sort: Sequence[tuple[str, SortDirection]] | None = None,
    ) -> Document | None:
        """The first match: by ``sort`` (document fields, typed) if given, then by
        ``(creation_utc, id)``; None when nothing matches."""
        with self._db.stats.timed("find_one"):
            params = _filters.encode_where(filters)
            order = _filters.encode_order(sort, None)
            if self._is_metadata and not filters and not sort:
                documents = self._snapshot()
                return documents[0] if documents else None
            return self._find_one(filters, params, order)

    def _find_one(
        self, filters: Mapping[str, Any], params: list[tuple[str, str]], order: str
    ) -> Document | None:
        if _filters.matches_nothing(filters):
            return None
        rows = self._select("find_one", params, order, 1, columns="data")
        return row_to_document(rows[0]) if rows else None

    def count(self, filters: Mapping[str, Any]) -> int:
        """How many documents match ``filters`` (one request)."""
        with self._db.stats.timed("count"):
            params = _filters.encode_where(filters)
            if _filters.matches_nothing(filters):
                return 0
            return self._count("count", params)

    def iter_documents(
        self, filters: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> Iterator[Document]:
        """Every matching document in ``(creation_utc, id)`` order, fetched page by page."""
        where = filters or {}
        params = _filters.encode_where(where)
        if _filters.matches_nothing(where):
            return
        for batch, _ in self._pages("iter_documents", params, None, None, page_size):
            for row in batch:
                yield row_to_document(row)

    def ensure_indexes(self, indexes: Sequence[CollectionIndex]) -> None:
        """A hint only: the indexes come from the generated SQL. Sends no request."""

    # writes ---------------------------------------------------------------------------------

    def insert_one(self, document: Mapping[str, Any]) -> InsertResult:
        """Insert ``document`` (it must have every key of the schema, as in Transient).

        An existing id raises :class:`DuplicateDocument` (a ``ValueError``), unless a retried
        request finds that its own earlier attempt stored the identical document.
        """
        with self._db.stats.timed("insert_one"), self._writing() as write:
            ensure_is_total(document, self._schema)
            self._insert("insert_one", document_to_row(document))
            if write is not None:
                write.inserted(dict(document))
            return InsertResult(acknowledged=True)

    def update_one(
        self, filters: Mapping[str, Any], params: Mapping[str, Any], upsert: bool = False
    ) -> UpdateResult[Any]:
        """Merge ``params`` over the first match (shallow, atomic on the server).

        A hit gives ``matched_count=1, modified_count=1`` and the merged document; a miss gives
        0, 0 and None, or with ``upsert`` inserts ``params`` (which must then be a complete
        document) and returns it with counts 0, 0.
        """
        with self._db.stats.timed("update_one"), self._writing() as write:
            validate_document(params, "params")
            where = _filters.encode_where(filters)
            pinned = _filters.id_pinned(filters)
            if not _filters.matches_nothing(filters):
                # Each lost race means another caller removed a match, so this ends.
                while True:
                    target = (
                        pinned if pinned is not None else self._first_id("update_one", where)
                    )
                    if target is None:
                        break
                    merged = self._merge(target, params)
                    if merged is not None:
                        if write is not None:
                            write.replaced(target, merged)
                        return UpdateResult(
                            acknowledged=True,
                            matched_count=1,
                            modified_count=1,
                            updated_document=merged,
                        )
                    if pinned is not None:
                        break
                    # The match was deleted between the two requests: look again.
            if upsert:
                ensure_is_total(params, self._schema)
                self._insert("update_one", document_to_row(params))
                if write is not None:
                    write.inserted(dict(params))
                return UpdateResult(
                    acknowledged=True, matched_count=0, modified_count=0, updated_document=params
                )
            if write is not None:
                write.unchanged()
            return UpdateResult(
                acknowledged=True, matched_count=0, modified_count=0, updated_document=None
            )

    def delete_one(self, filters: Mapping[str, Any]) -> DeleteResult[Any]:
        """Delete the first match; ``deleted_document`` is the complete deleted document."""
        with self._db.stats.timed("delete_one"), self._writing() as write:
            where = _filters.encode_where(filters)
            pinned = _filters.id_pinned(filters)
            if not _filters.matches_nothing(filters):
                # Each lost race means another caller removed a match, so this ends.
                while True:
                    known: Document | None = None
                    if pinned is not None:
                        target: str | None = pinned
                    else:
                        rows = self._select(
                            "delete_one", where, _filters.encode_order(None), 1, columns="id,data"
                        )
                        target = rows[0]["id"] if rows else None
                        known = row_to_document(rows[0]) if rows else None
                    if target is None:
                        break
                    deleted, retried = self._delete_ids(
                        "delete_one", self._table, [target], returning=True
                    )
                    if deleted:
                        if write is not None:
                            write.deleted(target)
                        return DeleteResult(
                            acknowledged=True,
                            deleted_count=1,
                            deleted_document=row_to_document(deleted[0]),
                        )
                    if known is not None and retried:
                        # A repeated DELETE found nothing: the first attempt deleted it.
                        if write is not None:
                            write.deleted(target)
                        return DeleteResult(
                            acknowledged=True, deleted_count=1, deleted_document=known
                        )
                    if pinned is not None:
                        break
            if write is not None:
                write.unchanged()
            return DeleteResult(acknowledged=True, deleted_count=0, deleted_document=None)

    # helpers --------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[MetadataWrite | None]:
        # Metadata writes report their effect so the cached snapshot stays equal to the table.
        if self._is_metadata:
            with self._db.metadata_cache.writing(self._db._db_key, self._table) as write:
                yield write
        else:
            yield None

    def _snapshot(self) -> list[Document]:
        def load() -> list[Document]:
            return [
                row_to_document(row)
                for batch, _ in self._pages("metadata", [], None, None)
                for row in batch
            ]

        return self._db.metadata_cache.documents(self._db._db_key, self._table, load)

    def _apply(self, builder: Any, params: Sequence[tuple[str, str]]) -> Any:
        for key, value in params:
            if key == "or":
                builder = builder.or_(value[1:-1])
            else:
                operator, _, criteria = value.partition(".")
                builder = builder.filter(key, operator, criteria)
        return builder

    @staticmethod
    def _order(builder: Any, order: str) -> Any:
        # postgrest-py's order() appends "<column>.<asc|desc>" verbatim; our order string always
        # ends with the id tiebreak, so it goes in as one "column" plus the last direction.
        head, _, direction = order.rpartition(".")
        return builder.order(head, desc=direction == "desc")

    def _select(
        self,
        operation: str,
        params: Sequence[tuple[str, str]],
        order: str,
        limit: int,
        *,
        columns: str = _ROW_COLUMNS,
        count: bool = False,
    ) -> list[Document]:
        rows, _ = self._select_counted(operation, params, order, limit, columns=columns, count=count)
        return rows

    def _select_counted(
        self,
        operation: str,
        params: Sequence[tuple[str, str]],
        order: str,
        limit: int,
        *,
        columns: str = _ROW_COLUMNS,
        count: bool = False,
    ) -> tuple[list[Document], int | None]:
        table = self._table

        def build() -> Any:
            builder = self._db._pg.table(table).select(
                columns, count=_EXACT if count else None
            )
            builder = self._apply(builder, params)
            return self._order(builder, order).limit(limit)

        def send(number: int) -> Any:
            return self._db._execute_response(operation, table, build())

        response = self._db._retry(operation, table, send)
        data = response.data if isinstance(response.data, list) else []
        return data, response.count

    def _count(self, operation: str, params: Sequence[tuple[str, str]]) -> int:
        rows, total = self._select_counted(
            operation, params, _filters.encode_order(None), 0, columns="id", count=True
        )
        return total if total is not None else len(rows)

    def _pages(
        self,
        operation: str,
        params: Sequence[tuple[str, str]],
        direction: SortDirection | None,
        limit: int | None,
        page_size: int | None = None,
    ) -> Iterator[tuple[list[Document], int | None]]:
        """Keyset pages on ``(creation_utc, id)``; the first page also counts the matches.

        Stops after ``limit`` rows, after as many rows as the first page counted (so rows
        inserted meanwhile cannot make it run on), or at an empty page. A page shorter than
        asked is a server ``max-rows`` cap (or concurrent deletes): paging just continues.
        """
        page = page_size or self._db.settings.page_size
        order = _filters.encode_order(None, direction)
        fetched = 0
        total: int | None = None
        after: tuple[str, str] | None = None
        warned = False
        while True:
            want = page
            if limit is not None:
                want = min(want, limit - fetched)
            if total is not None:
                want = min(want, total - fetched)
            if want <= 0:
                return
            extra = list(params)
            if after is not None:
                extra.append(
                    _filters.encode_cursor(Cursor(after[0], ObjectId(after[1])), direction)
                )
            batch, count = self._select_counted(
                operation, extra, order, want, count=total is None
            )
            if total is None:
                total = count
            fetched += len(batch)
            yield batch, total
            if not batch:
                return
            if len(batch) < want and total is None:
                return  # no count to go by: a short page ends it
            if len(batch) < want and not warned and fetched < (total or 0):
                warned = True
                self._db.logger.info(
                    "parlant-supabase-sync: %s returned %d of %d rows (server max-rows cap); "
                    "paging on",
                    self._table,
                    len(batch),
                    want,
                )
            last = batch[-1]
            after = (str(last.get("creation_utc") or ""), str(last.get("id") or ""))

    def _first_id(self, operation: str, params: Sequence[tuple[str, str]]) -> str | None:
        rows = self._select(operation, params, _filters.encode_order(None), 1, columns="id")
        return str(rows[0]["id"]) if rows else None

    def _insert(self, operation: str, row: Document) -> None:
        table = self._table

        def check(number: int, error: SupabaseSyncError) -> None:
            # A retried insert whose earlier attempt reached the table meets its own row.
            if not (isinstance(error, DuplicateDocument) and self._stored(row["id"]) == row["data"]):
                raise error

        self._db._send(
            operation,
            table,
            lambda: self._db._pg.table(table).insert(row, returning=_MINIMAL),
            retry=True,
            check=check,
        )

    def _stored(self, doc_id: Any) -> Document | None:
        if not isinstance(doc_id, str):
            return None
        rows = self._select("verify", [("id", f"eq.{doc_id}")], _filters.encode_order(None), 1)
        return row_to_document(rows[0]) if rows else None

    def _merge(self, doc_id: str, params: Mapping[str, Any]) -> Document | None:
        body = {"p_table": self._table, "p_id": doc_id, "p_params": dict(params), "p_upsert": False}
        new_id = params.get("id")

        def send(number: int) -> Any:
            merged = self._db._rpc("update_one", MERGE_FUNCTION, body)
            if merged is None and number > 0 and isinstance(new_id, str) and new_id != doc_id:
                # The earlier attempt may have applied and moved the row to its new id.
                stored = self._stored(new_id)
                if stored is not None and all(stored.get(k) == v for k, v in params.items()):
                    return stored
            return merged

        result = self._db._retry("update_one", self._table, send)
        return result if isinstance(result, dict) else None

    def _delete_ids(
        self, operation: str, table: str, ids: Sequence[str], *, returning: bool
    ) -> tuple[list[Document], bool]:
        """Delete ``ids`` (chunked); the rows deleted, and whether any request was repeated."""
        deleted: list[Document] = []
        retried = False
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]

            def build(chunk: Sequence[str] = chunk) -> Any:
                builder = self._db._pg.table(table).delete(
                    returning=_REPRESENTATION if returning else _MINIMAL
                )
                if len(chunk) == 1:
                    return builder.filter("id", "eq", chunk[0])
                return builder.filter(
                    "id", "in", "(" + ",".join(_filters.quote(i) for i in chunk) + ")"
                )

            def send(number: int, build: Callable[[], Any] = build) -> Any:
                nonlocal retried
                retried = retried or number > 0
                return self._db._execute(operation, table, build())

            data = self._db._retry(operation, table, send)
            if isinstance(data, list):
                deleted.extend(data)
        return deleted, retried

    # loader ---------------------------------------------------------------------------------

    def _run_loader_once(self, loader: Loader) -> None:
        key = (self._db._db_key, self._table)
        if key in _LOADED:
            return
        with _load_lock(key):
            if key in _LOADED:
                return
            self._run_loader(loader)
            with _STATE_LOCK:
                _LOADED.add(key)

    def _run_loader(self, loader: Loader) -> None:
        logger = self._db.logger
        visited: set[str] = set()
        migrated_total = failed_total = 0
        for batch, _ in self._pages("loader", [], None, None):
            rewrites: list[Document] = []
            moved_ids: list[str] = []
            failures: list[Document] = []
            for row in batch:
                doc_id = str(row.get("id"))
                if doc_id in visited:
                    continue
                visited.add(doc_id)
                document = row_to_document(row)
                try:
                    migrated = loader(document)
                except Exception as exc:  # noqa: BLE001 - a failing loader must not lose data
                    logger.error(
                        "parlant-supabase-sync: loader failed for document %r in %s: %s",
                        doc_id,
                        self._table,
                        exc,
                    )
                    migrated = None
                if migrated is None:
                    failures.append(document)
                elif migrated is not document:
                    rewrites.append(document_to_row(migrated))
                    if migrated.get("id") != document.get("id"):
                        moved_ids.append(doc_id)
            if rewrites:
                self._upsert_rows(rewrites)
                migrated_total += len(rewrites)
                visited.update(str(row["id"]) for row in rewrites)
            if moved_ids:
                self._delete_ids("loader", self._table, moved_ids, returning=False)
            if failures:
                failed_total += self._fail(failures)
        if migrated_total or failed_total:
            logger.info(
                "parlant-supabase-sync: %s: %d document(s) migrated, %d moved to %s",
                self._table,
                migrated_total,
                failed_total,
                self._tables.failed,
            )

    def _upsert_rows(self, rows: list[Document]) -> None:
        table = self._table
        self._db._send(
            "loader",
            table,
            lambda: self._db._pg.table(table).upsert(rows, returning=_MINIMAL),
            retry=True,
        )

    def _fail(self, documents: list[Document]) -> int:
        failed_table = self._tables.failed
        if failed_table is None:
            self._db.logger.warning(
                "parlant-supabase-sync: %d document(s) of %s were rejected by the loader but "
                "are kept: the %s collection has no failed-migrations table",
                len(documents),
                self._table,
                self._name,
            )
            return 0
        now = _now_utc()
        records = [
            {
                "id": doc.get("id") if isinstance(doc.get("id"), str) else None,
                "data": doc,
                "failed_utc": now,
            }
            for doc in documents
        ]
        # Copy first, then delete: a failure in between leaves a copy, never a loss. The
        # failed table has no key, so a retried copy may duplicate a record (harmless).
        self._db._send(
            "loader",
            failed_table,
            lambda: self._db._pg.table(failed_table).insert(
                records, returning=_MINIMAL
            ),
            retry=True,
        )
        ids = [str(doc.get("id")) for doc in documents]
        self._delete_ids("loader", self._table, ids, returning=False)
        return len(documents)
