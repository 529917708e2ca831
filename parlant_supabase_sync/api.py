"""Synchronous inspection API for scripts, notebooks and the REPL (no event loop, no Parlant)::

    from parlant_supabase_sync import connect
    with connect() as db:                                   # SUPABASE_URL / SUPABASE_KEY from the environment
        print(db.store("sessions").collection("events").count({"session_id": {"$eq": "s1"}}))

`connect()` gives a `Connection`; `db.store(key_or_prefix)` a `Store`; `.collection(name)` a
`Collection` with `find`, `find_one`, `count`, `get`, `insert`, `update`, `delete` and iteration
over every document in pages. Filters are Parlant `Where` dicts. Every method is a thin call
into the core (`SyncDocumentDatabase`/`SyncDocumentCollection`), `readiness` (`check`,
`schema_report`) or `bulk` (import, export, failed documents). The `parlant-supabase-sync` CLI
is a thin layer over this module.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from . import bulk, readiness
from ._types import Cursor, FindResult, ObjectId, SortDirection
from .bulk import (
    ExportPlan,
    ExportResult,
    ExportTarget,
    ExportTargetError,
    FailedDocument,
    ImportConflict,
    ImportInvalid,
    ImportReport,
    OnConflict,
    Progress,
    RestoreResult,
    check_shape,
    plan_export,
)
from .ddl import schema_sql
from .errors import ConfigurationError
from .filters import compile_where
from .naming import (
    DEFAULT_STORES,
    METADATA_COLLECTION,
    StoreLayout,
    UnknownCollection,
    UnknownStore,
    resolve_store,
    store_layouts,
    table_names,
    tables_of,
)
from .readiness import (
    CheckReport,
    CollectionInfo,
    OverviewRow,
    SchemaReport,
    StoreInfo,
    TableStatus,
)
from .transport import Transport

if TYPE_CHECKING:
    import httpx
    from typing_extensions import Self

    from .core import SyncDocumentCollection, SyncDocumentDatabase
    from .settings import SupabaseSettings

__all__ = [
    "CheckReport", "Collection", "CollectionInfo", "Connection", "ExportPlan", "ExportResult",
    "ExportTarget", "ExportTargetError", "FailedDocument", "ImportConflict", "ImportInvalid",
    "ImportReport", "OverviewRow", "Progress", "RestoreResult", "SchemaReport", "Store",
    "StoreInfo", "TableStatus", "UnknownCollection", "UnknownStore", "check_shape", "connect",
    "decode_cursor", "encode_cursor", "plan_export", "schema_sql",
]

SortSpec = str | Sequence[tuple[str, str | SortDirection]] | None
CursorLike = Cursor | str | None


# --- cursors and sort specs ----------------------------------------------------------------


def encode_cursor(cursor: Cursor) -> str:
    """The cursor as Parlant's API spells it: base64 of ``creation_utc|id``."""
    return base64.b64encode(f"{cursor.creation_utc}|{cursor.id}".encode()).decode()


def decode_cursor(text: str) -> Cursor:
    """Parse a cursor printed by `encode_cursor` (or Parlant's API); raises ConfigurationError."""
    try:
        creation_utc, doc_id = base64.b64decode(text.encode(), validate=True).decode().split("|", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ConfigurationError(
            f"invalid cursor {text!r}: pass the value printed after `--cursor` by a previous page"
        ) from None
    return Cursor(creation_utc=creation_utc, id=ObjectId(doc_id))


def _cursor(value: CursorLike) -> Cursor | None:
    if value is None or isinstance(value, Cursor):
        return value
    return decode_cursor(value)


def _sort(spec: SortSpec) -> list[tuple[str, SortDirection]]:
    if spec is None:
        return []
    items: Sequence[Any] = [spec] if isinstance(spec, str) else spec
    result: list[tuple[str, SortDirection]] = []
    for item in items:
        name, direction = item.partition(":")[::2] if isinstance(item, str) else item
        if isinstance(direction, SortDirection):
            result.append((name, direction))
            continue
        text = (direction or "asc").lower()
        if not name or text not in ("asc", "desc"):
            raise ConfigurationError(
                f"invalid sort {item!r}: use 'field', 'field:asc' or 'field:desc'"
            )
        result.append((name, SortDirection.DESC if text == "desc" else SortDirection.ASC))
    return result


def _natural_order(sort: list[tuple[str, SortDirection]]) -> tuple[bool, SortDirection | None]:
    """(True, direction) when `sort` is the core's (creation_utc, id) order, else (False, None)."""
    if not sort:
        return True, None
    directions = {d for _, d in sort}
    names = [n for n, _ in sort]
    if len(directions) == 1 and names in (["creation_utc"], ["creation_utc", "id"]):
        return True, directions.pop()
    return False, None


def _where(where: Mapping[str, Any] | str | None) -> dict[str, Any]:
    return {"id": {"$eq": where}} if isinstance(where, str) else dict(where or {})


# --- collections and stores ----------------------------------------------------------------


class Collection:
    """One collection (table) of a store; every method is one or a few HTTP requests."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name
        names = table_names(store.prefix, name)
        self.table = names.main
        self.failed_table = names.failed
        self._core: SyncDocumentCollection | None = None

    def __repr__(self) -> str:
        return f"<Collection {self.name!r} table={self.table!r}>"

    @property
    def core(self) -> SyncDocumentCollection:
        """The core collection object (created on first use; sends no request)."""
        if self._core is None:
            from .core import SyncDocumentCollection

            # Not `get_collection`: its loader pass scans every document once per process,
            # and inspecting must neither cost a full scan nor migrate anything. A missing
            # table shows up as TableMissing on the first request instead.
            database = self.store.database
            tables = database.table_for(self.name)
            self._core = SyncDocumentCollection(database, self.name, dict, tables)
        return self._core

    # reads

    def find(
        self,
        where: Mapping[str, Any] | None = None,
        limit: int | None = None,
        cursor: CursorLike = None,
        sort: SortSpec = None,
    ) -> FindResult[Any]:
        """One page of matches, ordered by (creation_utc, id) unless `sort` says otherwise.

        `sort`: "field", "field:desc" or [(field, "asc"|"desc"|SortDirection), ...]; `cursor`
        (a `Cursor` or its `encode_cursor` text) works with the default order only.
        """
        keys = _sort(sort)
        natural, direction = _natural_order(keys)
        parsed = _cursor(cursor)
        if natural:
            return self.core.find(
                _where(where), limit=limit, cursor=parsed, sort_direction=direction
            )
        if parsed is not None:
            raise ConfigurationError(
                "a cursor pages through the default (creation_utc, id) order only; drop the "
                "sort or the cursor"
            )
        return self._find_sorted(_where(where), limit, keys)

    def find_one(
        self, where: Mapping[str, Any] | None = None, sort: SortSpec = None
    ) -> dict[str, Any] | None:
        """The first match (by `sort`, when given), or None."""
        return self.core.find_one(_where(where), sort=_sort(sort) or None)

    def get(self, id: str) -> dict[str, Any] | None:
        """The document with this id, or None."""
        return self.core.find_one(_where(id))

    def count(self, where: Mapping[str, Any] | None = None) -> int:
        """How many documents match (all when `where` is None)."""
        return self.core.count(_where(where))

    def rows(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        sort: SortSpec = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching document, fetched page by page (constant memory)."""
        keys = _sort(sort)
        natural, direction = _natural_order(keys)
        filters = _where(where)
        compile_where(filters)  # a bad filter raises here, not at the first next()
        if natural and direction is not SortDirection.DESC:
            return self.core.iter_documents(filters, page_size=page_size)
        return self._iter_sorted(filters, keys or [("creation_utc", SortDirection.DESC)], page_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.rows()

    # writes

    def insert(self, document: Mapping[str, Any]) -> None:
        """Insert one document; raises DuplicateDocument when the id exists."""
        self.core.insert_one(dict(document))

    def update(
        self, where: Mapping[str, Any] | str, params: Mapping[str, Any], *, upsert: bool = False
    ) -> dict[str, Any] | None:
        """Merge `params` into the first match (a `Where`, or an id); returns the new document."""
        document: dict[str, Any] | None = self.core.update_one(
            _where(where), dict(params), upsert=upsert
        ).updated_document
        return document

    def delete(self, where: Mapping[str, Any] | str) -> dict[str, Any] | None:
        """Delete the first match (a `Where`, or an id); returns the deleted document or None."""
        document: dict[str, Any] | None = self.core.delete_one(_where(where)).deleted_document
        return document

    def insert_many(self, documents: Sequence[Mapping[str, Any]]) -> None:
        """Insert documents (one request per 1,000, each all or nothing)."""
        if documents:
            self.core.insert_many(documents)

    # bulk work (bulk.py)

    def import_jsonl(
        self,
        source: bulk.Source,
        *,
        dry_run: bool = False,
        on_conflict: OnConflict = "fail",
        batch_size: int = 500,
        progress: Progress | None = None,
    ) -> ImportReport:
        """Import JSON lines, validated whole before the first write (see `bulk.import_jsonl`)."""
        return bulk.import_jsonl(
            self, source, dry_run=dry_run, on_conflict=on_conflict, batch_size=batch_size,
            progress=progress,
        )  # fmt: skip

    def export_jsonl(
        self,
        output: str | os.PathLike[str] | None = None,
        *,
        stdout: IO[str] | None = None,
        page_size: int | None = None,
        progress: Progress | None = None,
    ) -> ExportResult:
        """Export every document as JSON lines to `output` (a file, a directory or stdout)."""
        plan = plan_export([self], output)
        [result] = bulk.export(plan, stdout=stdout, page_size=page_size, progress=progress)
        return result

    def failed(self) -> Iterator[FailedDocument]:
        """Rows of this collection's failed-migrations table (empty for `metadata`)."""
        return bulk.failed_documents(self)

    def restore_failed(self, ids: Iterable[str]) -> list[RestoreResult]:
        """Move fixed documents back from the failed-migrations table (`bulk.restore_failed`)."""
        return bulk.restore_failed(self, ids)

    # sorted listings: keyset pages on (sort keys, creation_utc, id), past any max-rows cap

    def _find_sorted(
        self, where: dict[str, Any], limit: int | None, keys: list[tuple[str, SortDirection]]
    ) -> FindResult[Any]:
        if limit is None:
            items = list(self._iter_sorted(where, keys, None))
            return FindResult(items=items, total_count=len(items), has_more=False)
        page = self.store.connection.settings.page_size
        items, total = self.core.find_sorted(where, keys, min(limit, page), count=True)
        total = total or 0
        while len(items) < min(limit, total):
            more, _ = self.core.find_sorted(
                where, keys, min(limit - len(items), page), after=items[-1]
            )
            if not more:
                break
            items.extend(more)
        return FindResult(items=items, total_count=total, has_more=total > len(items))

    def _iter_sorted(
        self, where: dict[str, Any], keys: list[tuple[str, SortDirection]], page_size: int | None
    ) -> Iterator[dict[str, Any]]:
        page = page_size or self.store.connection.settings.page_size
        after: dict[str, Any] | None = None
        while True:
            rows, _ = self.core.find_sorted(where, keys, page, after=after)
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1]


class Store:
    """The collections under one table prefix (one Parlant store)."""

    def __init__(self, connection: Connection, layout: StoreLayout) -> None:
        self.connection = connection
        self.layout = layout
        self.key, self.prefix, self.collections = layout
        self.label = layout.label  # the store's key or, for a custom prefix, the prefix
        self._database: SyncDocumentDatabase | None = None
        self._open: dict[str, Collection] = {}

    def __repr__(self) -> str:
        return f"<Store {self.label!r} prefix={self.prefix!r}>"

    @property
    def database(self) -> SyncDocumentDatabase:
        """The core database for this prefix (created on first use, closed with the connection)."""
        if self._database is None:
            from .core import SyncDocumentDatabase

            self._database = SyncDocumentDatabase(
                table_prefix=self.prefix, transport=self.connection.transport
            )
        return self._database

    def collection(self, name: str) -> Collection:
        """A handle on one collection (no request); `UnknownCollection` for a name the store
        does not have (any valid name under a custom prefix whose layout is unknown)."""
        if name not in self._open:
            self._open[name] = Collection(self, self.layout.collection(name))
        return self._open[name]

    def __getitem__(self, name: str) -> Collection:
        return self.collection(name)

    def failed_collections(self) -> list[str]:
        """The collections that have a failed-migrations table."""
        return [c for c in self.collections if c != METADATA_COLLECTION]

    def close(self) -> None:
        """Close the core database (not the shared HTTP client)."""
        if self._database is not None:
            self._database.close()
            self._database = None


class Connection:
    """A connection to one Supabase project (one shared HTTP client); use as a context manager."""

    def __init__(
        self, settings: SupabaseSettings, *, http_client: httpx.Client | None = None
    ) -> None:
        self.settings = settings
        self.transport = Transport(settings, http_client)
        self.http: httpx.Client = self.transport.http
        self._stores: dict[str, Store] = {}

    def __repr__(self) -> str:
        return f"<Connection url={self.settings.url!r} schema={self.settings.db_schema!r}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every store and the HTTP client (if this connection created it)."""
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        self.transport.close()

    def store(self, name: str) -> Store:
        """A store by key (`sessions`, `customers`, `context_variables`) or by table prefix."""
        layout = resolve_store(name)
        if layout.prefix not in self._stores:
            self._stores[layout.prefix] = Store(self, layout)
        return self._stores[layout.prefix]

    def __getitem__(self, name: str) -> Store:
        return self.store(name)

    def _layouts(self, names: Iterable[str] | None) -> list[StoreLayout]:
        return store_layouts(names or DEFAULT_STORES)

    def schema_report(self, tables: Iterable[str]) -> SchemaReport:
        """Which of `tables` and the adapter functions exist (`readiness.fetch_report`)."""
        return readiness.fetch_report(self.transport, tables)

    def check(
        self, names: Iterable[str] | None = None, *, vectors: bool | None = None
    ) -> CheckReport:
        """Tables, functions and the key's role, with the one next step (`readiness.check`).

        `vectors`: check Parlant's vector stores' tables too (default: when the settings put
        the vector stores on Supabase, PARLANT_SUPABASE_VECTOR_STORE=supabase).
        """
        if vectors is None:
            vectors = self.settings.vector_store == "supabase"
        return readiness.check(
            self.settings,
            self.transport,
            self._layouts(names),
            named=names is not None,
            vectors=vectors,
        )

    def stores(self, names: Iterable[str] | None = None) -> list[StoreInfo]:
        """The stores (default: the three Parlant stores), their collections and table state."""
        return readiness.inventory(self.transport, self._layouts(names))

    def tables(self, names: Iterable[str] | None = None) -> dict[str, TableStatus]:
        """Every table of the stores (default: the three Parlant stores) → its state."""
        return self.schema_report(tables_of(self._layouts(names))).tables

    def overview(
        self, names: Iterable[str] | None = None, *, counts: bool = True
    ) -> list[OverviewRow]:
        """One row per collection with its document and failed-document counts (for `ls`)."""
        return readiness.overview(self.transport, self._layouts(names), counts=counts)


def connect(
    url: str | None = None,
    key: str | None = None,
    schema: str | None = None,
    **settings: Any,
) -> Connection:
    """Connect to a Supabase project; arguments not given come from the environment
    (SUPABASE_URL, SUPABASE_KEY, SUPABASE_SCHEMA, PARLANT_SUPABASE_*).

    Extra keyword arguments are `SupabaseSettings` fields (e.g. `page_size=500`); pass
    `http_client=` to share an `httpx.Client`.
    """
    from .settings import SupabaseSettings

    http_client = settings.pop("http_client", None)
    given = {"url": url, "key": key, "db_schema": schema}
    settings.update({name: value for name, value in given.items() if value is not None})
    return Connection(SupabaseSettings.from_env(**settings), http_client=http_client)
