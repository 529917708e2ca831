"""The engine's RPC stage: `/rpc/<fn>` (PostgREST's mainCall and function resolution)."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from . import schema_cache
from .engine_context import RequestStage, _content_range, _override, _range_refusal
from .engine_request import (
    _RAW_BODY_TYPES,
    ApiResponse,
    Range,
    _applied,
    _cap,
    _content_type,
)
from .errors import PgrstError
from .sqlbuild import (
    Frag,
    Source,
    ident,
    join,
    limit_offset,
    order_clause,
    param,
    qident,
    raw,
    select_list,
    where_clause,
)


class RpcStage(RequestStage):
    def _rpc(self, name: str) -> ApiResponse:
        funcs = self.catalog.functions(self.schema, name)
        is_post = self.method == "POST"
        if is_post:
            assert self.payload is not None
            keys = sorted(self.payload.keys)
        else:
            keys = sorted({k for k, _ in self.q.rpc_args})
        func, one_json = self._resolve(funcs, name, keys, is_post)
        if is_post and not func.volatile:
            self._exec(raw("SET TRANSACTION READ ONLY"))
        self._check_embeds(name)
        self._plan_checks()
        rng = _cap(self.range, self.config.max_rows)
        if self.prefs.handling == "strict" and self.prefs.max_affected is not None and not func.returns_set:
            raise PgrstError(
                400,
                "PGRST128",
                "Function must return SETOF or TABLE when max-affected preference is used with handling=strict",
            )
        self._set_config()
        stmt = self._call_statement(func, keys, one_json, rng)
        row = tuple(self._exec(stmt).fetchone() or ())
        max_affected = self.prefs.max_affected if self.prefs.handling == "strict" else None
        if max_affected is not None and row[1] > max_affected:
            raise PgrstError(
                400,
                "PGRST124",
                "Query result exceeds max-affected preference constraint",
                f"The query affects {row[1]} rows",
            )
        if func.returns_void:
            return self._void_response(row, rng)
        return self._rpc_response(row, rng)

    def _call_statement(
        self, func: schema_cache.Function, keys: list[str], one_json: bool, rng: Range
    ) -> Frag:
        """Statements.mainCall: the call, then filters, order and range on its result."""
        scalar = not func.returns_composite
        call = self._call_sql(func, keys, one_json)
        src = Source(raw("pgrst_source"), func.return_types)
        if scalar:
            select = raw("pgrst_call.pgrst_scalar")
            fn_call = "(SELECT " + call + " pgrst_scalar) pgrst_call"
        else:
            select = raw("pgrst_call.*")
            fn_call = call + " pgrst_call"
        if one_json or not keys or self.method != "POST":
            call_from = "FROM " + fn_call
        else:
            call_from = self._rpc_args_from(func, keys) + ", LATERAL " + fn_call
        call_sql = "SELECT " + select + " " + call_from
        single = not func.returns_set
        where = where_clause(src, self.q.filters, self.q.logic)
        if scalar:
            read = raw("SELECT pgrst_source.pgrst_scalar FROM pgrst_source") + where
        else:
            read = "SELECT " + select_list(src, self.q.select) + " FROM pgrst_source" + where
        read = read + order_clause(src, self.q.order) + limit_offset(rng.limit, rng.offset)
        count_sql = "SELECT 1 FROM pgrst_source" + where
        body = self._body_expr(scalar=scalar, single=single)
        # Statements.mainCall counts for exact/estimated only (no EXPLAIN for RPC).
        counting = self.prefs.count in ("exact", "estimated")
        stmt = "WITH pgrst_source AS (" + call_sql + ")"
        if counting:
            stmt = stmt + ", pgrst_source_count AS (" + count_sql + ")"
        total = raw("(SELECT pg_catalog.count(*) FROM pgrst_source_count)") if counting else raw("null::bigint")
        page = raw("1") if single else raw("pg_catalog.count(_postgrest_t)")
        stmt = (
            stmt
            + " SELECT "
            + total
            + " AS total_result_set, "
            + page
            + " AS page_total, ("
            + body
            + ")::text AS body, nullif(current_setting('response.headers', true), '') AS response_headers,"
            + " nullif(current_setting('response.status', true), '') AS response_status"
            + " FROM ("
            + read
            + ") _postgrest_t"
        )
        return stmt

    def _void_response(self, row: tuple[Any, ...], rng: Range) -> ApiResponse:
        _total, _page, _body, resp_headers, resp_status = row
        headers = [("Content-Range", _content_range(rng.offset, rng.offset + _page - 1, _total))]
        applied = _applied(self.prefs, resolution=False, missing=False, return_=False, max_affected=True)
        if applied:
            headers.append(("Preference-Applied", applied))
        # PostgREST builds the response after COMMIT: a bad response GUC is a 500 on committed data.
        self._finish()
        status, headers = _override(204, headers, resp_status, resp_headers)
        return ApiResponse(status, headers, b"")

    def _rpc_response(self, row: tuple[Any, ...], rng: Range) -> ApiResponse:
        total, page_total, body, resp_headers, resp_status = row
        status, headers = self._page_status(rng, total, page_total)
        applied = _applied(self.prefs, resolution=False, missing=False, return_=False, max_affected=True)
        if applied:
            headers.append(("Preference-Applied", applied))
        payload = _range_refusal(rng, total) if status == 416 else body.encode("utf-8")
        headers.append(("Content-Type", self._content_type()))
        headers.extend(self._profile_headers())
        # PostgREST builds the response after COMMIT: a bad response GUC is a 500 on committed data.
        self._finish()
        status, headers = _override(status, headers, resp_status, resp_headers)
        return ApiResponse(status, headers, b"" if self.method == "HEAD" else payload)

    def _resolve(
        self, funcs: list[schema_cache.Function], name: str, keys: list[str], is_post: bool
    ) -> tuple[schema_cache.Function, bool]:
        keyset = set(keys)
        ctype = _content_type(self.headers)
        raw_type = _RAW_BODY_TYPES.get(ctype) if is_post else None
        matches = []
        for fn in funcs:
            names = {p.name for p in fn.params}
            required = {p.name for p in fn.params if not p.has_default}
            if any(not p.name for p in fn.params):
                continue
            if not fn.params and raw_type is not None:
                continue
            if keyset <= names and required <= keyset:
                matches.append(fn)
        if not matches and is_post:
            # Plan.hs `hasSingleUnnamedParam`: the whole body feeds one unnamed parameter.
            wanted = ("json", "jsonb") if ctype == "application/json" else (raw_type,) if raw_type else ()
            for fn in funcs:
                if len(fn.params) == 1 and not fn.params[0].name and fn.params[0].type in wanted:
                    matches.append(fn)
            if matches:
                if len(matches) > 1:
                    raise self._ambiguous(matches)
                return matches[0], True
        if not matches:
            func_name = f"{self.schema}.{name}"
            if keys:
                msg_params = "(" + ", ".join(keys) + ")"
                det_params = (" with parameters " if len(keys) > 1 else " with parameter ") + ", ".join(keys)
            else:
                msg_params = det_params = " without parameters"
            if is_post and ctype == "application/json":
                det_params += " or with a single unnamed json/jsonb parameter"
            elif raw_type is not None:
                msg_params = ""
                det_params = f" with a single unnamed {raw_type} parameter"
            hint = None
            if raw_type is not None:
                pass  # PostgREST gives no hint for raw-body (single unnamed parameter) calls
            elif funcs:
                signatures = ["(" + ", ".join(sorted(p.name for p in fn.params)) + ")" for fn in funcs]
                best = schema_cache.closest("(" + ", ".join(keys) + ")", signatures, threshold=0.0)
                if best is not None:
                    hint = f"Perhaps you meant to call the function {func_name}{best}"
            else:
                other = schema_cache.closest(name, self.catalog.function_names(self.schema))
                if other is not None:
                    hint = f"Perhaps you meant to call the function {self.schema}.{other}"
            raise PgrstError(
                404,
                "PGRST202",
                f"Could not find the function {func_name}{msg_params} in the schema cache",
                f"Searched for the function {func_name}{det_params}, but no matches were found in the schema cache.",
                hint,
            )
        if len(matches) > 1:
            raise self._ambiguous(matches)
        return matches[0], False

    def _ambiguous(self, matches: list[schema_cache.Function]) -> PgrstError:
        listed = ", ".join(
            f"{fn.schema}.{fn.name}(" + ", ".join(f"{p.name} => {p.type}" for p in fn.params) + ")" for fn in matches
        )
        return PgrstError(
            300,
            "PGRST203",
            "Could not choose the best candidate function between: " + listed,
            None,
            "Try renaming the parameters or the function itself in the database so function overloading can be resolved",
        )

    def _call_sql(self, func: schema_cache.Function, keys: list[str], one_json: bool) -> Frag:
        target = qident(func.schema, func.name)
        if one_json:
            assert self.payload is not None
            value: Any = self.payload.json_text
            if isinstance(self.payload.raw_body, bytes):
                raw_bytes = self.payload.raw_body
                value = raw_bytes if func.params[0].type == "bytea" else raw_bytes.decode("utf-8", errors="replace")
            return target + "(" + Frag([sql.Placeholder()], [value]) + "::" + raw(func.params[0].type) + ")"
        used = [p for p in func.params if p.name in set(keys)]
        if self.method == "POST":
            args = join(
                ", ",
                ((raw("VARIADIC ") if p.variadic else Frag()) + ident(p.name) + " := pgrst_body." + ident(p.name) for p in used),
            )
        else:
            values: dict[str, list[str]] = {}
            for k, v in self.q.rpc_args:
                values.setdefault(k, []).append(v)
            parts = []
            for p in used:
                vals = values[p.name]
                if p.variadic:
                    arg = raw("VARIADIC ") + ident(p.name) + " := " + param(_pg_text_array(vals)) + "::" + raw(p.type)
                else:
                    arg = ident(p.name) + " := " + param(vals[-1]) + "::" + raw(p.type)
                parts.append(arg)
            args = join(", ", parts)
        return target + "(" + args + ")"

    def _rpc_args_from(self, func: schema_cache.Function, keys: list[str]) -> Frag:
        if self.method != "POST":
            return Frag()
        assert self.payload is not None
        used = [p for p in func.params if p.name in set(keys)]
        text = self.payload.json_text or "{}"
        is_object = text.lstrip(" \t\r\n").startswith("{")
        fn = "json_to_record" if is_object else "json_to_recordset"
        typed = join(", ", (ident(p.name) + " " + raw(p.type) for p in used))
        names = join(", ", (ident(p.name) for p in used))
        return (
            "FROM (SELECT "
            + param(text)
            + "::json AS json_data) pgrst_payload, LATERAL (SELECT "
            + names
            + " FROM "
            + fn
            + "(pgrst_payload.json_data) AS _("
            + typed
            + ") LIMIT 1) pgrst_body"
        )


def _pg_text_array(values: list[str]) -> str:
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"
