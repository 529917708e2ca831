"""Reads of one adapter table: one GET when the filter fits a URL, else ``parlant_find``; keyset
paging on ``(creation_utc, id)`` and sorted keyset pages (``find_sorted``).

Used by :mod:`parlant_supabase_sync.core` (and through it the loader and the tools layer). Every
request goes through :class:`~parlant_supabase_sync.transport.Transport`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from . import filters as _filters
from ._types import Cursor, FindResult, ObjectId, SortDirection
from .ddl_functions import FIND_FUNCTION, REPORT_FUNCTION
from .errors import InvalidResponse
from .filters import Condition, Order
from .rows import row_to_document
from .transport import Expect, Transport

__all__ = [
    "ROW_COLUMNS",
    "TableReader",
    "count_rows",
    "find_in",
    "read_rows",
    "schema_report",
    "sort_value",
]

Document = dict[str, Any]

ROW_COLUMNS = "id,creation_utc,data"


def sort_value(term: Mapping[str, Any], document: Mapping[str, Any]) -> dict[str, Any]:
    """``document``'s value for one ``parlant_find`` order term (``{"null": true}``: SQL NULL)."""
    path = term["p"]
    if "col" in path:
        value = document.get(path["col"])
        return {"v": value} if isinstance(value, str) else {"null": True}
    return {"v": document[path["key"]]} if path["key"] in document else {"null": True}


def _cursor_of(document: Mapping[str, Any]) -> Cursor:
    return Cursor(
        creation_utc=str(document.get("creation_utc", "")),
        id=ObjectId(str(document.get("id", ""))),
    )


def find_in(
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
        next_cursor = _cursor_of(items[-1]) if items else None
        return FindResult(items=items, total_count=total, has_more=True, next_cursor=next_cursor)
    return FindResult(items=documents, total_count=total, has_more=False, next_cursor=None)


def read_rows(
    transport: Transport,
    operation: str,
    table: str,
    params: Sequence[tuple[str, str]],
    *,
    columns: str = "*",
    order: str | None = None,
    limit: int | None = None,
) -> list[Document]:
    """One GET of ``table``'s rows (for the tools layer's listings of any adapter table)."""
    request = transport.select_request(
        table, columns, params, order=order, limit=limit, bounded=False
    )
    rows: list[Document] = transport.send(operation, request, table=table).data
    return rows


def count_rows(transport: Transport, operation: str, table: str) -> int:
    """How many rows ``table`` holds (one request)."""
    request = transport.select_request(table, "id", [], limit=0, count=True, bounded=False)
    return transport.send(operation, request, table=table, count=True).count or 0


def schema_report(transport: Transport, tables: Sequence[str]) -> dict[str, Any]:
    """``parlant_schema_report`` for ``tables``: one request (see ddl_functions)."""
    request = transport.rpc_request(REPORT_FUNCTION, {"p_tables": list(tables)})
    report: dict[str, Any] = transport.send(
        "schema_report", request, function=REPORT_FUNCTION, expect=Expect.OBJECT
    ).data
    return report


class TableReader:
    """The reads of one table (thread-safe: it holds no per-call state)."""

    def __init__(
        self, transport: Transport, table: str, *, page_size: int, logger: logging.Logger
    ) -> None:
        self._transport = transport
        self._table = table
        self._page_size = page_size
        self._logger = logger

    def select(
        self,
        operation: str,
        params: Sequence[Condition],
        order: Order | None,
        limit: int | None,
        *,
        columns: str = ROW_COLUMNS,
        count: bool = False,
    ) -> tuple[list[Document], int | None]:
        """One request: the matching rows (at most ``limit``) and, with ``count``, the total."""
        transport = self._transport
        request = transport.select_request(
            self._table,
            columns,
            [condition.param for condition in params],
            order=None if order is None else order.param,
            limit=limit,
            count=count,
        )
        if request is not None:
            answer = transport.send(operation, request, table=self._table, count=count)
            return answer.data, answer.count
        # Too long for a URL (the gateway refuses request lines over 8 KiB): the same filter
        # in a POST body, compiled to the same SQL by parlant_find.
        return self.find_rpc(operation, params, order, limit, count=count)

    def find_rpc(
        self,
        operation: str,
        params: Sequence[Condition],
        order: Order | None,
        limit: int | None,
        *,
        count: bool,
        after: list[dict[str, Any]] | None = None,
    ) -> tuple[list[Document], int | None]:
        """``parlant_find``: the filter tree in a POST body (one request, never capped)."""
        transport = self._transport
        body = {
            "p_table": self._table,
            "p_where": [condition.tree for condition in params],
            "p_order": [] if order is None else list(order.terms),
            "p_limit": limit,
            "p_count": count,
            "p_after": after,
        }
        found = transport.send(
            operation,
            transport.rpc_request(FIND_FUNCTION, body, table=self._table),
            table=self._table,
            function=FIND_FUNCTION,
            expect=Expect.OBJECT,
        ).data
        rows, total = found.get("rows"), found.get("total")
        if not isinstance(rows, list) or (count and not isinstance(total, int)):
            raise InvalidResponse(f"parlant_find answered without rows or total for {self._table}")
        return rows, total

    def find(
        self,
        params: Sequence[Condition],
        limit: int | None,
        cursor: Cursor | None,
        direction: SortDirection | None,
    ) -> FindResult[Any]:
        """The core's ``find``: matches in ``(creation_utc, id)`` order after ``cursor``, up to
        ``limit`` (``total_count`` ignores it); one request per page."""
        if cursor is not None:
            params = [*params, _filters.compile_cursor(cursor, direction)]
        if limit == 0:
            matches = self.count("find", params)
            return FindResult(
                items=[], total_count=matches, has_more=matches > 0, next_cursor=None
            )
        rows: list[Document] = []
        total: int | None = None
        for batch, count in self.pages("find", params, direction, limit):
            if total is None:
                total = count
            rows.extend(batch)
        items = [row_to_document(row) for row in rows]
        total_count = total if total is not None else len(items)
        has_more = limit is not None and total_count > limit
        next_cursor = _cursor_of(items[-1]) if has_more and items else None
        return FindResult(
            items=items, total_count=total_count, has_more=has_more, next_cursor=next_cursor
        )

    def sorted_page(
        self,
        params: Sequence[Condition],
        order: Order,
        limit: int,
        *,
        after: Mapping[str, Any] | None,
        count: bool,
    ) -> tuple[list[Document], int | None]:
        """One keyset page in ``order``, strictly after the document ``after``."""
        keyset = None if after is None else [sort_value(term, after) for term in order.terms]
        return self.find_rpc("find_sorted", params, order, limit, count=count, after=keyset)

    def count(self, operation: str, params: Sequence[Condition]) -> int:
        """How many rows match (one request)."""
        # No order: it cannot change a count.
        rows, total = self.select(operation, params, None, 0, columns="id", count=True)
        return total if total is not None else len(rows)

    def first_id(self, operation: str, params: Sequence[Condition]) -> str | None:
        """The id of the first match in ``(creation_utc, id)`` order."""
        rows, _ = self.select(operation, params, _filters.compile_order(None), 1, columns="id")
        return str(rows[0]["id"]) if rows else None

    def pages(
        self,
        operation: str,
        params: Sequence[Condition],
        direction: SortDirection | None,
        limit: int | None,
        page_size: int | None = None,
    ) -> Iterator[tuple[list[Document], int | None]]:
        """Keyset pages on ``(creation_utc, id)``; the first page also counts the matches.

        Stops after ``limit`` rows, after as many rows as the first page counted (so rows
        inserted meanwhile cannot make it run on), or at an empty page. A page shorter than
        asked is a server ``max-rows`` cap (or concurrent deletes): paging just continues.
        """
        page = page_size or self._page_size
        order = _filters.compile_order(None, direction)
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
                    _filters.compile_cursor(Cursor(after[0], ObjectId(after[1])), direction)
                )
            batch, count = self.select(operation, extra, order, want, count=total is None)
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
                self._logger.info(
                    "parlant-supabase-sync: %s returned %d of %d rows (server max-rows cap); "
                    "paging on",
                    self._table,
                    len(batch),
                    want,
                )
            last = batch[-1]
            after = (str(last.get("creation_utc") or ""), str(last.get("id") or ""))
