"""The engine's write stage: POST/PUT/PATCH/DELETE on tables (PostgREST's mainWrite)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from . import schema_cache
from .engine_context import RequestStage, _content_range, _override
from .engine_request import (
    _NON_FILTER_KEYS,
    _NON_FILTER_LAST,
    ApiResponse,
    _applied,
)
from .errors import PgrstError
from .grammar import Filter
from .sqlbuild import (
    Frag,
    Source,
    ident,
    join,
    order_clause,
    param,
    qident,
    raw,
    select_list,
    where_clause,
)


class WriteStage(RequestStage):
    def _check_columns(self, table: schema_cache.Table, keys: list[str]) -> list[schema_cache.Column]:
        # PostgREST keeps the payload keys in a Set, so columns (and the first unknown one
        # reported) come in sorted order.
        cols = []
        for key in sorted(set(keys)):
            col = table.column(key)
            if col is None:
                raise PgrstError(
                    400, "PGRST204", f"Could not find the '{key}' column of '{table.name}' in the schema cache"
                )
            cols.append(col)
        return cols

    def _returning(self, table: schema_cache.Table) -> Frag:
        if self.prefs.return_ == "representation":
            return raw(" RETURNING ") + qident(table.schema, table.name) + ".*"
        if self.prefs.return_ == "headers-only" and table.pk:
            return raw(" RETURNING ") + join(", ", (qident(table.schema, table.name) + "." + ident(c) for c in table.pk))
        return raw(" RETURNING 1")

    def _body_source(self, cols: list[schema_cache.Column], *, limit_one: bool, defaults: bool) -> Frag:
        """`FROM (SELECT $1 AS json_data) pgrst_payload, LATERAL (...) pgrst_body` (SqlFragment.fromJsonBodyF)."""
        assert self.payload is not None
        is_object = self.payload.is_object
        cast = "::jsonb" if defaults else "::json"
        frag = "FROM (SELECT " + param(self.payload.json_text) + cast + " AS json_data) pgrst_payload, "
        source = "pgrst_payload.json_data"
        if defaults:
            defs = [c for c in cols if c.default is not None]
            build = (
                "jsonb_build_object(" + join(", ", (param(c.name) + "::text, " + raw(c.default or "") for c in defs)) + ")"
                if defs
                else raw("'{}'::jsonb")
            )
            if is_object:
                frag = frag + "LATERAL (SELECT " + build + " || pgrst_payload.json_data AS val) pgrst_json_defs, "
            else:
                frag = (
                    frag
                    + "LATERAL (SELECT jsonb_agg("
                    + build
                    + " || elem) AS val FROM jsonb_array_elements(pgrst_payload.json_data) elem) pgrst_json_defs, "
                )
            source = "pgrst_json_defs.val"
        prefix = "jsonb" if defaults else "json"
        if cols:
            fn = f"{prefix}_to_record" if is_object else f"{prefix}_to_recordset"
            typed = join(", ", (ident(c.name) + " " + raw(c.type) for c in cols))
            names = join(", ", (ident(c.name) for c in cols))
            inner = "SELECT " + names + " FROM " + fn + "(" + source + ") AS _(" + typed + ")"
        elif is_object:
            inner = raw("SELECT FROM (values(1)) _")
        else:
            inner = raw(f"SELECT FROM {prefix}_array_elements({source}) _")
        if limit_one:
            inner = inner + " LIMIT 1"
        return frag + "LATERAL (" + inner + ") pgrst_body"

    def _insert(self, table: schema_cache.Table, src: Source) -> ApiResponse:
        assert self.payload is not None
        payload = self.payload
        is_put = self.method == "PUT"
        cols = self._check_columns(table, payload.keys)
        if is_put:
            self._check_put(table)
        self._plan_checks()
        on_conflict = self.q.on_conflict if self.q.on_conflict is not None else list(table.pk)
        resolution = self.prefs.resolution if (table.pk or self.q.on_conflict is not None) else None
        if not (table.pk or self.q.on_conflict is not None):
            self.prefs.resolution = None
        if is_put:
            resolution = "merge-duplicates"
            on_conflict = list(table.pk)
        defaults = self.prefs.missing == "default" and self.q.columns is not None
        target = qident(table.schema, table.name)
        names = join(", ", (ident(c.name) for c in cols))
        stmt = "INSERT INTO " + target + (" (" + names + ") " if cols else " ")
        body_cols = join(", ", (raw("pgrst_body.") + ident(c.name) for c in cols)) if cols else Frag()
        stmt = stmt + "SELECT " + body_cols + " " + self._body_source(cols, limit_one=is_put, defaults=defaults)
        merge = resolution == "merge-duplicates"
        put_conds: list[Filter] = list(self.q.filters) if is_put else []
        if put_conds:
            stmt = stmt + " WHERE " + _inserted_inc() + " AND " + join(
                " AND ", (_render_body_filter(f) for f in put_conds)
            )
        elif merge:
            stmt = stmt + " WHERE " + _inserted_inc()
        if resolution and on_conflict:
            stmt = stmt + " ON CONFLICT(" + join(", ", (ident(c) for c in on_conflict)) + ") "
            if resolution == "ignore-duplicates" or not cols:
                stmt = stmt + "DO NOTHING"
            else:
                stmt = stmt + "DO UPDATE SET " + join(
                    ", ", (ident(c.name) + " = EXCLUDED." + ident(c.name) for c in cols)
                )
                stmt = stmt + " WHERE " + _inserted_dec()
        stmt = stmt + self._returning(table)
        self._set_config()
        row = self._run_write(stmt, src, table, location=self.prefs.return_ == "headers-only" and bool(table.pk))
        return self._write_response(row, "put" if is_put else "insert", table, merge=merge)

    def _check_put(self, table: schema_cache.Table) -> None:
        flts = self.q.filters
        pk = set(table.pk)
        filter_keys = {k for k, _ in self.req.query if k not in _NON_FILTER_KEYS and k.split(".")[-1] not in _NON_FILTER_LAST}
        ok = (
            bool(pk)
            and not self.q.logic
            and filter_keys == pk
            and all(f.op == "eq" and not f.negate and f.quant is None for f in flts)
        )
        if not ok:
            raise PgrstError(405, "PGRST105", "Filters must include all and only primary key columns with 'eq' operators")

    def _run_write(
        self, mutate: Frag, src: Source, table: schema_cache.Table, *, location: bool = False
    ) -> tuple[Any, ...]:
        body = self._body_expr()
        represent = self.prefs.return_ == "representation"
        if represent:
            source = Source(raw("pgrst_source"), src.types)
            select = (
                "SELECT "
                + select_list(source, self.q.select)
                + " FROM pgrst_source"
                + order_clause(source, self.q.order)
            )
        else:
            select = raw("SELECT * FROM pgrst_source")
        if location:
            loc = raw(
                "CASE WHEN pg_catalog.count(_postgrest_t) = 1"
                " THEN (SELECT row_to_json(_)::text FROM pgrst_source _ LIMIT 1) END"
            )
        else:
            loc = raw("null::text")
        stmt = (
            "WITH pgrst_source AS ("
            + mutate
            + ") SELECT pg_catalog.count(_postgrest_t) AS page_total, ("
            + (body if represent else raw("''"))
            + ")::text AS body, nullif(current_setting('response.headers', true), '') AS response_headers,"
            + " nullif(current_setting('response.status', true), '') AS response_status,"
            + " nullif(current_setting('pgrst.inserted', true), '')::int AS response_inserted, "
            + loc
            + " AS location FROM ("
            + select
            + ") _postgrest_t"
        )
        row = self._exec(stmt).fetchone()
        assert row is not None
        return tuple(row)

    def _write_response(
        self, row: tuple[Any, ...], kind: str, table: schema_cache.Table, *, merge: bool = False
    ) -> ApiResponse:
        page_total, body, resp_headers, resp_status, inserted, location = row
        if kind == "put" and page_total != 1:
            raise PgrstError(400, "PGRST115", "Payload values do not match URL in primary key column(s)")
        if self.singular and page_total != 1:
            raise PgrstError(
                406,
                "PGRST116",
                "Cannot coerce the result to a single JSON object",
                f"The result contains {page_total} rows",
            )
        max_affected = self.prefs.max_affected if self.prefs.handling == "strict" else None
        if kind in ("update", "delete") and max_affected is not None and page_total > max_affected:
            raise PgrstError(
                400,
                "PGRST124",
                "Query result exceeds max-affected preference constraint",
                f"The query affects {page_total} rows",
            )
        represent = self.prefs.return_ == "representation"
        if kind == "insert":
            status, headers = self._insert_headers(page_total, inserted, location, table, merge=merge)
        elif kind == "put":
            status, headers = (201 if (inserted or 0) > 0 else 200) if represent else 204, []
        else:
            status, headers = 200 if represent else 204, self._mutate_headers(page_total, kind)
        payload = b""
        if represent:
            payload = body.encode("utf-8")
            headers.append(("Content-Type", self._content_type()))
            headers.extend(self._profile_headers())
        if kind == "put":
            applied = _applied(self.prefs, resolution=False, missing=False, return_=True, max_affected=False)
            if applied:
                headers.append(("Preference-Applied", applied))
        # PostgREST builds the response after COMMIT: a bad response GUC is a 500 on committed data.
        self._finish()
        status, headers = _override(status, headers, resp_status, resp_headers)
        return ApiResponse(status, headers, payload)

    def _insert_headers(
        self, page_total: int, inserted: int | None, location: str | None, table: schema_cache.Table, *, merge: bool
    ) -> tuple[int, list[tuple[str, str]]]:
        counting = self.prefs.count in ("exact", "estimated")
        headers: list[tuple[str, str]] = []
        if location:
            headers.append(("Location", "/" + table.name + _location_query(location, table.pk)))
        headers.append(("Content-Range", _content_range(1, 0, page_total if counting else None)))
        applied = _applied(self.prefs, resolution=True, missing=True, return_=True, max_affected=False)
        if applied:
            headers.append(("Preference-Applied", applied))
        return (200 if (merge and (inserted or 0) <= 0) else 201), headers

    def _mutate_headers(self, page_total: int, kind: str) -> list[tuple[str, str]]:
        """Content-Range and Preference-Applied of a PATCH or DELETE."""
        counting = self.prefs.count in ("exact", "estimated")
        total = page_total if counting else None
        if kind == "update":
            headers = [("Content-Range", _content_range(0, page_total - 1, total))]
        else:
            headers = [("Content-Range", _content_range(1, 0, total))]
        applied = _applied(self.prefs, resolution=False, missing=kind == "update", return_=True, max_affected=True)
        if applied:
            headers.append(("Preference-Applied", applied))
        return headers

    def _update(self, table: schema_cache.Table, src: Source) -> ApiResponse:
        assert self.payload is not None
        payload = self.payload
        cols = self._check_columns(table, payload.keys)
        self._plan_checks()
        target = qident(table.schema, table.name)
        where = where_clause(src, self.q.filters, self.q.logic)
        if not cols:
            returned = target + ".*" if self.prefs.return_ == "representation" else raw("NULL")
            stmt = "SELECT " + returned + " FROM " + target + " WHERE false"
        else:
            if self.config.safeupdate and not (self.q.filters or self.q.logic):
                raise PgrstError(400, "21000", "UPDATE requires a WHERE clause")
            defaults = self.prefs.missing == "default" and self.q.columns is not None
            sets = join(", ", (ident(c.name) + " = pgrst_body." + ident(c.name) for c in cols))
            stmt = (
                "UPDATE "
                + target
                + " SET "
                + sets
                + " "
                + self._body_source(cols, limit_one=not payload.is_object, defaults=defaults)
                + where
                + self._returning(table)
            )
        self._set_config()
        row = self._run_write(stmt, src, table)
        return self._write_response(row, "update", table)

    def _delete(self, table: schema_cache.Table, src: Source) -> ApiResponse:
        self._plan_checks()
        if self.config.safeupdate and not (self.q.filters or self.q.logic):
            raise PgrstError(400, "21000", "DELETE requires a WHERE clause")
        target = qident(table.schema, table.name)
        stmt = "DELETE FROM " + target + where_clause(src, self.q.filters, self.q.logic) + self._returning(table)
        self._set_config()
        row = self._run_write(stmt, src, table)
        return self._write_response(row, "delete", table)


def _inserted_inc() -> Frag:
    # Counts rows offered to INSERT; the ON CONFLICT branch subtracts updates again, so the
    # final value says whether anything was inserted (201 vs 200 for merge-duplicates).
    return raw(
        "set_config('pgrst.inserted', (coalesce(nullif(current_setting('pgrst.inserted', true), '')::int, 0) + 1)::text, true) <> '0'"
    )


def _inserted_dec() -> Frag:
    return raw(
        "set_config('pgrst.inserted', (coalesce(nullif(current_setting('pgrst.inserted', true), '')::int, 0) - 1)::text, true) <> '-1'"
    )


def _render_body_filter(flt: Filter) -> Frag:
    from .sqlbuild import render_filter

    return render_filter(Source(raw("pgrst_body")), flt)


def _location_query(location_json: str, pk: tuple[str, ...]) -> str:
    row = json.loads(location_json)
    parts = []
    for col in pk:
        value = row.get(col)
        if value is None:
            parts.append((col, "is.null"))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            parts.append((col, "eq." + text))
    # http-types' renderSimpleQuery: query-style escaping, a space becomes '+'.
    return "?" + "&".join(urllib.parse.quote_plus(k, safe="") + "=" + urllib.parse.quote_plus(v, safe="") for k, v in parts)
