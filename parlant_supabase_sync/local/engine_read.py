"""The engine's read stage: GET/HEAD on tables, OPTIONS and the root (PostgREST's mainRead)."""

from __future__ import annotations

import json
from typing import Any

from . import schema_cache
from .engine_context import RequestStage, _canonical_query, _override, _range_refusal
from .engine_request import (
    _OPENAPI_CONTENT_TYPE,
    ApiResponse,
    Range,
    _applied,
    _cap,
)
from .errors import PgrstError
from .sqlbuild import (
    Frag,
    Source,
    limit_offset,
    order_clause,
    raw,
    select_list,
    where_clause,
)


class ReadStage(RequestStage):
    def _read(self, table: schema_cache.Table, src: Source) -> ApiResponse:
        rng = _cap(self.range, self.config.max_rows)
        where = where_clause(src, self.q.filters, self.q.logic)
        source_sql = (
            "SELECT "
            + select_list(src, self.q.select)
            + " FROM "
            + src.qualifier
            + where
            + order_clause(src, self.q.order)
            + limit_offset(rng.limit, rng.offset)
        )
        count_sql = "SELECT 1 FROM " + src.qualifier + where_clause(src, self.q.filters, self.q.logic)
        row = self._run_read(source_sql, count_sql, self._body_expr())
        return self._read_response(row, rng, content_location=f"/{table.name}")

    def _run_read(self, source_sql: Frag, count_sql: Frag, body: Frag) -> tuple[Any, ...]:
        """Statements.mainRead, plus the EXPLAIN of the count query for planned/estimated."""
        max_rows = self.config.max_rows
        counting = self.prefs.count in ("exact", "estimated")
        stmt = "WITH pgrst_source AS (" + source_sql + ")"
        if counting:
            limited = count_sql
            if self.prefs.count == "estimated" and max_rows is not None:
                limited = count_sql + f" LIMIT {max_rows + 1}"
            stmt = stmt + ", pgrst_source_count AS (" + limited + ")"
        total = raw("(SELECT pg_catalog.count(*) FROM pgrst_source_count)") if counting else raw("null::bigint")
        stmt = (
            stmt
            + " SELECT "
            + total
            + " AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, ("
            + body
            + ")::text AS body, nullif(current_setting('response.headers', true), '') AS response_headers,"
            + " nullif(current_setting('response.status', true), '') AS response_status"
            + " FROM (SELECT * FROM pgrst_source) _postgrest_t"
        )
        row = self._exec(stmt).fetchone()
        assert row is not None
        result = list(row)
        if self.prefs.count in ("planned", "estimated"):
            planned = self._explain_rows(count_sql)
            if self.prefs.count == "planned":
                result[0] = planned
            elif planned is not None and (max_rows is None or result[0] > max_rows):
                # MainTx.hs: past max-rows the larger of the capped count and the plan wins
                # (with no max-rows configured, Haskell's `Just n > Nothing` always holds).
                result[0] = max(result[0], planned)
        return tuple(result)

    def _explain_rows(self, count_sql: Frag) -> int | None:
        row = self._exec("EXPLAIN (FORMAT JSON) " + count_sql).fetchone()
        if row is None:
            return None
        plan = row[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        try:
            return int(plan[0]["Plan"]["Plan Rows"])
        except (KeyError, IndexError, TypeError, ValueError):
            return None

    def _read_response(self, row: tuple[Any, ...], rng: Range, *, content_location: str | None) -> ApiResponse:
        total, page_total, body, resp_headers, resp_status = row
        status, headers = self._page_status(rng, total, page_total)
        if content_location is not None:
            qs = _canonical_query(self.req.query)
            headers.append(("Content-Location", content_location + ("?" + qs if qs else "")))
        payload = _range_refusal(rng, total) if status == 416 else body.encode("utf-8")
        headers.append(("Content-Type", self._content_type()))
        headers.extend(self._profile_headers())
        applied = _applied(self.prefs, resolution=False, missing=False, return_=False, max_affected=False)
        if applied:
            headers.append(("Preference-Applied", applied))
        # PostgREST builds the response after COMMIT: a bad response GUC is a 500 on committed data.
        self._finish()
        status, headers = _override(status, headers, resp_status, resp_headers)
        return ApiResponse(status, headers, b"" if self.method == "HEAD" else payload)

    def _options(self, kind: str, name: str) -> ApiResponse:
        self._exec(raw("SET TRANSACTION READ ONLY"))
        if kind == "rpc":
            funcs = self.catalog.functions(self.schema, name)
            if not funcs:
                self.conn.rollback()
                raise PgrstError(
                    404,
                    "PGRST202",
                    f"Could not find the function {self.schema}.{name} without parameters in the schema cache",
                    f"Searched for the function {self.schema}.{name} without parameters, but no matches were found in the schema cache.",
                )
            allow = "OPTIONS,POST" if funcs[0].volatile else "OPTIONS,GET,HEAD,POST"
        else:
            table = self._lookup_table(name)
            writable = table.kind in ("r", "p", "f", "v")
            allow = "OPTIONS,GET,HEAD"
            if writable:
                allow += ",POST"
                if table.pk:
                    allow += ",PUT"
                allow += ",PATCH,DELETE"
        self.conn.rollback()
        return ApiResponse(200, [("Access-Control-Allow-Origin", "*"), ("Allow", allow)], b"")

    def _root(self) -> ApiResponse:
        if self.method == "OPTIONS":
            return ApiResponse(200, [("Access-Control-Allow-Origin", "*"), ("Allow", "OPTIONS,GET,HEAD")], b"")
        self._exec(raw("SET TRANSACTION READ ONLY"))
        names = sorted(self.catalog.table_names(self.schema))
        self.conn.rollback()
        doc = {
            "swagger": "2.0",
            "info": {"title": "parlant-supabase-sync local stand-in", "version": "14"},
            "basePath": "/",
            "schemes": ["http"],
            "consumes": ["application/json"],
            "produces": ["application/json"],
            "paths": {"/": {}, **{"/" + n: {} for n in names}},
        }
        body = json.dumps(doc, separators=(",", ":")).encode("utf-8")
        headers = [("Content-Type", _OPENAPI_CONTENT_TYPE)] + self._profile_headers()
        return ApiResponse(200, headers, b"" if self.method == "HEAD" else body)
