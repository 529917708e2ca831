"""Running Parlant's document loader over a collection's rows (the migration path), once per
process and table, and moving the documents it rejects to the failed-migrations table.

A document the loader returns unchanged (the same object) is not rewritten; a migrated one is
rewritten whole (``put_many``), and the old row removed if its id changed; one it rejects
(``None`` or an exception) moves to the failed table in one statement with its removal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .naming import TableNames
from .paging import TableReader
from .rows import row_to_document, validate_document

__all__ = ["WRITE_CHUNK", "Loader", "Write", "delete_ids", "run_loader_once"]

Document = dict[str, Any]
Loader = Callable[[Document], "Document | None"]
#: ``SyncDocumentDatabase.write``: (operation, table, write, args) → the outcome object.
Write = Callable[[str, str, str, Mapping[str, Any]], dict[str, Any]]

#: Ids or documents per bulk write (they travel in the POST body, not the URL).
WRITE_CHUNK = 1000

# (database, table) pairs whose loader has run in this process.
_LOADED: set[tuple[Hashable, str]] = set()
_LOAD_LOCKS: dict[tuple[Hashable, str], threading.Lock] = {}
_STATE_LOCK = threading.Lock()


def _load_lock(key: tuple[Hashable, str]) -> threading.Lock:
    with _STATE_LOCK:
        return _LOAD_LOCKS.setdefault(key, threading.Lock())


def _now_utc() -> str:
    return datetime.now(timezone.utc).isoformat()


def run_loader_once(
    database: Hashable,
    reader: TableReader,
    write: Write,
    name: str,
    tables: TableNames,
    loader: Loader,
    logger: logging.Logger,
) -> None:
    """Run ``loader`` over every row of collection ``name`` (table ``tables.main``) unless it
    already ran in this process."""
    key = (database, tables.main)
    if key in _LOADED:
        return
    with _load_lock(key):
        if key in _LOADED:
            return
        _run_loader(reader, write, name, tables, loader, logger)
        with _STATE_LOCK:
            _LOADED.add(key)


def delete_ids(write: Write, operation: str, table: str, ids: Sequence[str]) -> None:
    """Delete rows by id, one request per :data:`WRITE_CHUNK` ids."""
    for start in range(0, len(ids), WRITE_CHUNK):
        write(operation, table, "delete_many", {"ids": list(ids[start : start + WRITE_CHUNK])})


def _run_loader(
    reader: TableReader,
    write: Write,
    name: str,
    tables: TableNames,
    loader: Loader,
    logger: logging.Logger,
) -> None:
    table = tables.main
    visited: set[str] = set()
    migrated_total = failed_total = 0
    for batch, _ in reader.pages("loader", [], None, None):
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
                    table,
                    exc,
                )
                migrated = None
            if migrated is None:
                failures.append(document)
            elif migrated is not document:
                validate_document(migrated)
                rewrites.append(dict(migrated))
                if migrated.get("id") != document.get("id"):
                    moved_ids.append(doc_id)
        if rewrites:
            write("loader", table, "put_many", {"documents": rewrites})
            migrated_total += len(rewrites)
            visited.update(str(document["id"]) for document in rewrites)
        if moved_ids:
            delete_ids(write, "loader", table, moved_ids)
        if failures:
            failed_total += _fail(write, name, tables, failures, logger)
    if migrated_total or failed_total:
        logger.info(
            "parlant-supabase-sync: %s: %d document(s) migrated, %d moved to %s",
            table,
            migrated_total,
            failed_total,
            tables.failed,
        )


def _fail(
    write: Write,
    name: str,
    tables: TableNames,
    documents: list[Document],
    logger: logging.Logger,
) -> int:
    failed_table = tables.failed
    if failed_table is None:
        logger.warning(
            "parlant-supabase-sync: %d document(s) of %s were rejected by the loader but are "
            "kept: the %s collection has no failed-migrations table",
            len(documents),
            tables.main,
            name,
        )
        return 0
    ids = [str(doc.get("id")) for doc in documents]
    # One statement moves them: the copy and the removal commit together.
    for start in range(0, len(ids), WRITE_CHUNK):
        write(
            "loader",
            tables.main,
            "fail",
            {
                "ids": ids[start : start + WRITE_CHUNK],
                "failed_table": failed_table,
                "failed_utc": _now_utc(),
            },
        )
    return len(documents)
