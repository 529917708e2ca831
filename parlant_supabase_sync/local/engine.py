"""The PostgREST engine of the local stand-in: everything PostgREST v14 does after auth.

`execute()` turns one authenticated `ApiRequest` into one transaction on a connection of the
`authenticator` role and returns the `ApiResponse` PostgREST would send. The behaviour
reference is postgrest-protocol.md; where the notes cite PostgREST sources, they were checked
against tag v14.5 (read, not copied).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import psycopg
from psycopg import pq, sql

from . import schema_cache
from .errors import JSON_CONTENT_TYPE, PgrstError, from_pg_error
from .grammar import Filter, GrammarError, ParsedQuery, parse_query
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

__all__ = ["ApiRequest", "ApiResponse", "EngineConfig", "execute"]


@dataclass
class ApiRequest:
    """One request after authentication (the gateway fills it)."""

    method: str
    path: str  # after /rest/v1, e.g. "/docs", "/rpc/fn"
    query: list[tuple[str, str]]  # decoded (percent and '+'), in order
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    role: str
    claims: dict[str, Any]


class SchemaSource(Protocol):
    """Where the engine gets the schema cache from (`schema_listener.SchemaCache`)."""

    def current(self) -> schema_cache.Snapshot: ...


@dataclass(frozen=True)
class EngineConfig:
    """PostgREST settings that change engine behaviour."""

    schemas: tuple[str, ...] = ("public",)
    max_rows: int | None = 1000
    anon_role: str = "anon"
    tx_end: str = "commit"  # commit | commit-allow-override | rollback | rollback-allow-override
    safeupdate: bool = True
    extra_search_path: tuple[str, ...] = ("public", "extensions")
    # The schema cache requests are answered from; None: read pg_catalog in every request.
    schema_cache: SchemaSource | None = field(default=None, compare=False, repr=False)


@dataclass
class ApiResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


SINGULAR_MEDIA = "application/vnd.pgrst.object+json"
_OPENAPI_CONTENT_TYPE = "application/openapi+json; charset=utf-8"
_NON_FILTER_KEYS = ("select", "columns", "on_conflict")
_NON_FILTER_LAST = ("order", "limit", "offset", "and", "or")
# Bodies passed whole to a single unnamed parameter of this type (RPC only).
_RAW_BODY_TYPES = {"text/plain": "text", "text/xml": "xml", "application/octet-stream": "bytea"}
_TABLE_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def execute(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
    """Run one request in its own transaction; never raises for client or database errors."""
    try:
        return _Request(conn, request, config).run()
    except PgrstError as err:
        _rollback(conn)
        return _error_response(err)
    except psycopg.Error as err:
        _rollback(conn)
        return _error_response(from_pg_error(err, request.role, config.anon_role))
    finally:
        if not conn.closed and conn.info.transaction_status != pq.TransactionStatus.IDLE:
            _rollback(conn)


def _rollback(conn: psycopg.Connection[Any]) -> None:
    if conn.closed:
        return
    try:
        conn.rollback()
    except psycopg.Error:
        # A broken connection: the pool discards it when it is returned.
        pass


def _error_response(err: PgrstError) -> ApiResponse:
    return ApiResponse(err.status, err.response_headers(), err.body())


# --- request-level parsing (PostgREST's ApiRequest stage) ------------------------------------


@dataclass
class Prefs:
    resolution: str | None = None
    missing: str | None = None
    return_: str | None = None
    count: str | None = None
    tx: str | None = None
    handling: str | None = None
    timezone: str | None = None
    max_affected: int | None = None
    invalid: list[str] = field(default_factory=list)


_PREF_GROUPS = {
    "resolution": ("resolution=merge-duplicates", "resolution=ignore-duplicates"),
    "return_": ("return=representation", "return=minimal", "return=headers-only"),
    "count": ("count=exact", "count=planned", "count=estimated"),
    "tx": ("tx=commit", "tx=rollback"),
    "missing": ("missing=default", "missing=null"),
    "handling": ("handling=strict", "handling=lenient"),
}


def _parse_prefs(header: str | None, config: EngineConfig, timezone_ok: Callable[[str], bool]) -> Prefs:
    """PostgREST's `Preferences.fromHeaders`: the first value of each group wins."""
    prefs = Prefs()
    if not header:
        return prefs
    items = [p.strip() for p in header.split(",")]
    accepted = {v for group in _PREF_GROUPS.values() for v in group}
    allow_tx = config.tx_end.endswith("allow-override")
    for attr, values in _PREF_GROUPS.items():
        for item in items:
            if item in values:
                if attr == "tx" and not allow_tx:
                    break
                setattr(prefs, attr, item.split("=", 1)[1])
                break
    timezone = next((i[len("timezone=") :] for i in items if i.startswith("timezone=")), None)
    tz_ok = timezone is not None and timezone_ok(timezone)
    if tz_ok:
        prefs.timezone = timezone
    for item in items:
        if item.startswith("max-affected="):
            number = item[len("max-affected=") :]
            if re.fullmatch(r"-?[0-9]+", number.strip()):
                prefs.max_affected = int(number)
            break
    prefs.invalid = [
        i
        for i in items
        if i not in accepted and not (i.startswith("timezone=") and tz_ok) and not i.startswith("max-affected=")
    ]
    return prefs


def _applied(prefs: Prefs, *, resolution: bool, missing: bool, return_: bool, max_affected: bool) -> str | None:
    values = []
    if resolution and prefs.resolution:
        values.append("resolution=" + prefs.resolution)
    if missing and prefs.missing:
        values.append("missing=" + prefs.missing)
    if return_ and prefs.return_:
        values.append("return=" + prefs.return_)
    if prefs.count:
        values.append("count=" + prefs.count)
    if prefs.tx:
        values.append("tx=" + prefs.tx)
    if prefs.handling:
        values.append("handling=" + prefs.handling)
    if prefs.timezone:
        values.append("timezone=" + prefs.timezone)
    if max_affected and prefs.handling == "strict" and prefs.max_affected is not None:
        values.append(f"max-affected={prefs.max_affected}")
    return ", ".join(values) if values else None


@dataclass(frozen=True)
class Range:
    offset: int
    limit: int | None  # None = unbounded


def _range(parsed: ParsedQuery, range_header: str | None, method: str) -> Range:
    """PostgREST's `getRanges` (RangeQuery.hs / ApiRequest.hs), including its corner cases."""
    inf = None

    def intersect(a: tuple[int, int | None], b: tuple[int, int | None]) -> tuple[int, int | None]:
        upper = a[1] if b[1] is inf else b[1] if a[1] is inf else min(a[1], b[1])
        return max(a[0], b[0]), upper

    def empty(r: tuple[int, int | None]) -> bool:
        return r[1] is not None and r[1] < r[0]

    header: tuple[int, int | None] = (0, inf)
    if method == "GET" and range_header is not None:
        m = re.fullmatch(r"([0-9]+)-([0-9]*)", range_header)
        if m:
            header = (int(m.group(1)), int(m.group(2)) if m.group(2) else inf)
    limit_r: tuple[int, int | None]
    if parsed.limit is not None:
        limit_r = (0, parsed.limit - 1) if parsed.limit >= 0 else (0, -2)
        if parsed.offset is not None:
            n = max(parsed.limit, 0)
            limit_r = (parsed.offset, parsed.offset + n - 1)
    elif parsed.offset is not None:
        limit_r = (parsed.offset, inf)
    else:
        limit_r = (0, inf)
    limit_zero = limit_r[1] == -1
    top = (0, -1) if limit_zero else intersect(header, intersect(limit_r, (0, inf)))
    if empty(top) and not limit_zero:
        details = (
            "The lower boundary must be lower than or equal to the upper boundary in the Range header."
            if empty(header)
            else "Limit should be greater than or equal to zero."
        )
        raise PgrstError(416, "PGRST103", "Requested range not satisfiable", details)
    if method == "PUT" and top != (0, inf):
        raise PgrstError(400, "PGRST114", "limit/offset querystring parameters are not allowed for PUT")
    lower, upper = top
    return Range(lower, None if upper is None else upper - lower + 1)


def _cap(rng: Range, max_rows: int | None) -> Range:
    if max_rows is None:
        return rng
    limit = max_rows if rng.limit is None else min(rng.limit, max_rows)
    return Range(rng.offset, limit)


@dataclass(frozen=True)
class Media:
    """The negotiated response representation (PostgREST's builtin media handlers)."""

    kind: str  # "json", "singular", "csv"
    strip_nulls: bool = False

    @property
    def singular(self) -> bool:
        return self.kind == "singular"

    def content_type(self) -> str:
        if self.kind == "csv":
            return "text/csv; charset=utf-8"
        if self.kind == "singular":
            return SINGULAR_MEDIA + (";nulls=stripped" if self.strip_nulls else "") + "; charset=utf-8"
        if self.strip_nulls:
            return "application/vnd.pgrst.array+json;nulls=stripped; charset=utf-8"
        return JSON_CONTENT_TYPE


JSON_MEDIA = Media("json")


def _decode_media(item: str) -> tuple[str, Media | None]:
    pieces = [p.strip() for p in item.split(";")]
    media = pieces[0].lower()
    params = {}
    for extra in pieces[1:]:
        key, _, value = extra.partition("=")
        params[key.strip().lower()] = value.strip()
    strip = params.get("nulls") == "stripped"
    if media in ("application/json", "*/*"):
        return media, JSON_MEDIA
    if media == "application/vnd.pgrst.array+json":
        return media + (";nulls=stripped" if strip else ""), Media("json", strip)
    if media in (SINGULAR_MEDIA, "application/vnd.pgrst.object"):
        return media + (";nulls=stripped" if strip else ""), Media("singular", strip)
    if media == "text/csv":
        return media, Media("csv")
    return media, None


def _accept(headers: Mapping[str, str]) -> Media:
    """Content negotiation over `Accept` (Plan.hs negotiateContent); PGRST107 when nothing fits."""
    accept = headers.get("accept")
    if not accept:
        return JSON_MEDIA
    # http-types' parseHttpAccept: a stable sort by descending q value.
    weighted: list[tuple[float, str]] = []
    for part in accept.split(","):
        if not part.strip():
            continue
        quality = 1.0
        kept = []
        for extra in part.split(";"):
            key, _, value = extra.strip().partition("=")
            if key.strip().lower() == "q" and value:
                try:
                    quality = float(value)
                except ValueError:
                    quality = 1.0
            else:
                kept.append(extra)
        weighted.append((quality, ";".join(kept)))
    offered = [media for _, media in sorted(weighted, key=lambda item: -item[0])]
    names = []
    for item in offered:
        name, media = _decode_media(item)
        names.append(name)
        if media is not None:
            return media
    if not offered:
        return JSON_MEDIA
    raise PgrstError(406, "PGRST107", "None of these media types are available: " + ", ".join(names))


@dataclass
class Payload:
    json_text: str | None  # JSON text sent to json_to_record(set); None when absent
    keys: list[str]  # insert/update columns (body keys or columns=)
    is_object: bool
    raw_body: Any = None  # parsed body (RPC)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _content_type(headers: Mapping[str, str]) -> str:
    ct = headers.get("content-type")
    if not ct:
        return "application/json"
    return ct.split(";", 1)[0].strip().lower()


def _parse_payload(headers: Mapping[str, str], body: bytes, columns: list[str] | None, *, is_rpc: bool) -> Payload:
    """PostgREST's `getPayload` (ApiRequest/Payload.hs)."""
    ctype = _content_type(headers)
    if ctype == "application/json":
        if columns is not None:
            text = body.decode("utf-8", errors="replace")
            stripped = text.lstrip(" \t\r\n")
            return Payload(text if text else None, list(dict.fromkeys(columns)), stripped.startswith("{"))
        if not body and is_rpc:
            return Payload("{}", [], True, {})
        try:
            value = json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError):
            raise PgrstError(400, "PGRST102", "Empty or invalid json") from None
        return _payload_from_value(value, body.decode("utf-8"))
    if ctype == "application/x-www-form-urlencoded":
        pairs = urllib.parse.parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        obj = dict(pairs)
        return Payload(json.dumps(obj), list(obj), True, obj)
    if ctype == "text/csv" and not is_rpc:
        return _csv_payload(body)
    if is_rpc and ctype in _RAW_BODY_TYPES:
        return Payload(None, [], False, bytes(body))
    raise PgrstError(400, "PGRST102", "Content-Type not acceptable: " + ctype)


def _payload_from_value(value: Any, text: str) -> Payload:
    if isinstance(value, dict):
        return Payload(text, list(value), True, value)
    if isinstance(value, list):
        if not value:
            return Payload("[]", [], False, value)
        first = value[0]
        if not isinstance(first, dict):
            raise PgrstError(400, "PGRST102", "All object keys must match")
        keys = set(first)
        for item in value:
            if not isinstance(item, dict) or set(item) != keys:
                raise PgrstError(400, "PGRST102", "All object keys must match")
        return Payload(text, list(first), False, value)
    # A JSON scalar is treated as an empty array (Payload.hs `payloadAttributes`).
    return Payload("[]", [], False, [])


def _csv_payload(body: bytes) -> Payload:
    import csv
    import io

    reader = csv.reader(io.StringIO(body.decode("utf-8", errors="replace")))
    rows = list(reader)
    if not rows:
        return Payload("[]", [], False, [])
    header, data = rows[0], rows[1:]
    out = []
    for row in data:
        if len(row) != len(header):
            raise PgrstError(400, "PGRST102", "All lines must have same number of fields")
        out.append({k: (None if v == "NULL" else v) for k, v in zip(header, row)})
    return Payload(json.dumps(out), list(dict.fromkeys(header)), False, out)


# --- the request ------------------------------------------------------------------------------


class _Request:
    def __init__(self, conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> None:
        self.conn = conn
        self.req = request
        self.config = config
        self.method = request.method.upper()
        # The contract promises lower-cased names; normalising again costs nothing.
        self.headers: dict[str, str] = {k.lower(): v for k, v in request.headers.items()}
        source = config.schema_cache
        self.catalog: schema_cache.Catalog = (
            source.current() if source is not None else schema_cache.LiveCatalog(conn)
        )

    # Stage 1: everything PostgREST validates before touching the schema cache.
    def run(self) -> ApiResponse:
        path = self.req.path or "/"
        if not path.startswith("/"):
            path = "/" + path
        segments = [urllib.parse.unquote(s) for s in path[1:].split("/")] if path != "/" else []
        self.path = path
        # Same order as PostgREST's `userApiRequest`: resource, schema, then method.
        if not segments:
            kind, name = "root", ""
        elif len(segments) == 1:
            kind, name = "table", segments[0]
        elif len(segments) == 2 and segments[0] == "rpc":
            kind, name = "rpc", segments[1]
        else:
            raise PgrstError(404, "PGRST125", "Invalid path specified in request URL")
        self.schema, self.by_profile = self._schema()
        if kind == "rpc" and self.method not in ("GET", "HEAD", "POST", "OPTIONS"):
            raise PgrstError(405, "PGRST101", f"Cannot use the {self.method} method on RPC")
        allowed = ("GET", "HEAD", "OPTIONS") if kind == "root" else _TABLE_METHODS
        if self.method not in allowed:
            raise PgrstError(405, "PGRST117", "Unsupported HTTP method: " + self.method)
        if kind == "root":
            return self._root()
        if self.method == "OPTIONS":
            return self._options(kind, name)
        rpc_read = kind == "rpc" and self.method in ("GET", "HEAD")
        try:
            self.q = parse_query(self.req.query, rpc_read=rpc_read)
        except GrammarError as err:
            raise PgrstError(400, "PGRST100", err.message, err.details) from None
        self.range = _range(self.q, self.headers.get("range"), self.method)
        is_write = self.method in ("POST", "PATCH", "PUT", "DELETE")
        self.payload: Payload | None = None
        if (kind == "table" and self.method in ("POST", "PATCH", "PUT")) or (kind == "rpc" and self.method == "POST"):
            cols = self.q.columns if self.method in ("POST", "PATCH") else None
            self.payload = _parse_payload(self.headers, self.req.body, cols, is_rpc=kind == "rpc")
        # Begin: the access mode goes first; a POST /rpc of a non-volatile function switches
        # to READ ONLY after the catalog look-up (allowed: only the opposite switch is not).
        # PostgREST runs READ COMMITTED whatever the server default (MainTx.hs); per-role or
        # per-function `default_transaction_isolation` overrides are not emulated.
        mode = "READ WRITE" if is_write else "READ ONLY"
        self._exec(raw(f"SET TRANSACTION ISOLATION LEVEL READ COMMITTED, {mode}"))
        self.prefs = _parse_prefs(self.headers.get("prefer"), self.config, self._timezone_ok)
        # Media type (PGRST107) and strict preferences (PGRST122) are plan-stage checks in
        # PostgREST: they run after the table/function look-up, see `_plan_checks`.
        try:
            self.media = _accept(self.headers)
            self.accept_error: PgrstError | None = None
        except PgrstError as err:
            self.media = JSON_MEDIA
            self.accept_error = err
        self.singular = self.media.singular
        if kind == "rpc":
            return self._rpc(name)
        return self._table(name)

    def _timezone_ok(self, name: str) -> bool:
        return self.catalog.timezone_ok(name)

    def _plan_checks(self) -> None:
        if self.accept_error is not None:
            raise self.accept_error
        if self.prefs.handling == "strict" and self.prefs.invalid:
            raise PgrstError(
                400,
                "PGRST122",
                "Invalid preferences given with handling=strict",
                "Invalid preferences: " + ", ".join(self.prefs.invalid),
            )

    def _schema(self) -> tuple[str, bool]:
        schemas = self.config.schemas
        header = "content-profile" if self.method in ("POST", "PATCH", "PUT", "DELETE") else "accept-profile"
        wanted = self.headers.get(header)
        if wanted is None:
            return schemas[0], len(schemas) != 1
        if wanted not in schemas:
            raise PgrstError(
                406,
                "PGRST106",
                "Invalid schema: " + wanted,
                None,
                "Only the following schemas are exposed: " + ", ".join(schemas),
            )
        return wanted, True

    def _exec(self, frag: Frag) -> psycopg.Cursor[Any]:
        return self.conn.execute(frag.composed(), frag.params)

    def _profile_headers(self) -> list[tuple[str, str]]:
        return [("Content-Profile", self.schema)] if self.by_profile else []

    def _set_config(self) -> None:
        req = self.req
        claims = dict(req.claims)
        claims.setdefault("role", req.role)
        headers = {k: v for k, v in self.headers.items() if k != "cookie"}
        cookies: dict[str, str] = {}
        raw_cookie = self.headers.get("cookie")
        if raw_cookie:
            for part in raw_cookie.split(";"):
                if "=" in part:
                    k, v = part.split("=", 1)
                    cookies[k.strip()] = v.strip()
        search_path = ", ".join(_quote_ident(s) for s in (self.schema, *self.config.extra_search_path))
        settings: list[tuple[str, str]] = [("search_path", search_path)]
        settings.extend(schema_cache.role_settings(self.conn, req.role))
        settings += [
            ("role", req.role),
            ("request.jwt.claims", json.dumps(claims, separators=(",", ":"))),
            ("request.method", self.method),
            ("request.path", self.path),
            ("request.headers", json.dumps(headers, separators=(",", ":"))),
            ("request.cookies", json.dumps(cookies, separators=(",", ":"))),
        ]
        if self.prefs.timezone:
            settings.append(("timezone", self.prefs.timezone))
        calls = join(", ", ("set_config(" + param(k) + ", " + param(v) + ", true)" for k, v in settings))
        self._exec("select " + calls)

    # --- tables ------------------------------------------------------------------------------

    def _lookup_table(self, name: str) -> schema_cache.Table:
        table = self.catalog.table(self.schema, name)
        if table is None:
            hint_name = schema_cache.closest(name, self.catalog.table_names(self.schema))
            hint = f"Perhaps you meant the table '{self.schema}.{hint_name}'" if hint_name else None
            raise PgrstError(
                404, "PGRST205", f"Could not find the table '{self.schema}.{name}' in the schema cache", None, hint
            )
        return table

    def _check_embeds(self, source_name: str) -> None:
        for item in self.q.select:
            if item.relation:
                raise PgrstError(
                    400,
                    "PGRST200",
                    f"Could not find a relationship between '{source_name}' and '{item.field.name}' in the schema cache",
                    f"Searched for a foreign key relationship between '{source_name}' and '{item.field.name}' "
                    f"in the schema '{self.schema}', but no matches were found.",
                )
            if item.aggregate is not None:
                raise PgrstError(400, "PGRST123", "Use of aggregate functions is not allowed")
        targets = list(self.q.embed_targets) + [t.relation for t in self.q.order if t.relation is not None]
        if targets:
            target = targets[0]
            raise PgrstError(
                400,
                "PGRST108",
                f"'{target}' is not an embedded resource in this request",
                None,
                f"Verify that '{target}' is included in the 'select' query parameter.",
            )

    def _table(self, name: str) -> ApiResponse:
        table = self._lookup_table(name)
        self._check_embeds(name)
        src = Source(qident(table.schema, table.name), {c.name: c.base_type for c in table.columns})
        if self.method in ("GET", "HEAD"):
            self._plan_checks()
            self._set_config()
            return self._read(table, src)
        if self.method in ("POST", "PUT"):
            return self._insert(table, src)
        if self.method == "PATCH":
            return self._update(table, src)
        return self._delete(table, src)

    def _body_expr(self, scalar: bool = False, single: bool = False) -> Frag:
        """SqlFragment.asJsonF / asJsonSingleF / asCsvF for the negotiated media type."""
        if self.media.kind == "csv":
            return raw(
                "(SELECT coalesce(string_agg(a.k, ','), '') FROM (SELECT json_object_keys(r)::text AS k"
                " FROM (SELECT row_to_json(hh) AS r FROM pgrst_source AS hh LIMIT 1) s) a)"
                " || chr(10) || coalesce(string_agg(substring(_postgrest_t::text, 2,"
                " length(_postgrest_t::text) - 2), chr(10)), '')"
            )
        column = "_postgrest_t.pgrst_scalar" if scalar else "_postgrest_t"
        if self.singular or single:
            agg, empty = f"json_agg({column})->0", "null"
        else:
            agg, empty = f"json_agg({column})", "[]"
        if self.media.strip_nulls:
            agg = f"json_strip_nulls({agg})"
        return raw(f"coalesce({agg}, '{empty}')")

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
        lower = rng.offset
        upper = lower + page_total - 1
        status = 200
        if total is not None:
            if lower > total:
                status = 416
            elif (1 + upper - lower) < total:
                status = 206
        if self.singular and page_total != 1:
            raise PgrstError(
                406,
                "PGRST116",
                "Cannot coerce the result to a single JSON object",
                f"The result contains {page_total} rows",
            )
        headers = [("Content-Range", _content_range(lower, upper, total))]
        if content_location is not None:
            qs = _canonical_query(self.req.query)
            headers.append(("Content-Location", content_location + ("?" + qs if qs else "")))
        payload = body.encode("utf-8")
        if status == 416:
            err = PgrstError(
                416,
                "PGRST103",
                "Requested range not satisfiable",
                f"An offset of {lower} was requested, but there are only {total} rows.",
            )
            payload = err.body()
        headers.append(("Content-Type", self._content_type()))
        headers.extend(self._profile_headers())
        applied = _applied(self.prefs, resolution=False, missing=False, return_=False, max_affected=False)
        if applied:
            headers.append(("Preference-Applied", applied))
        # PostgREST builds the response after COMMIT: a bad response GUC is a 500 on committed data.
        self._finish()
        status, headers = _override(status, headers, resp_status, resp_headers)
        return ApiResponse(status, headers, b"" if self.method == "HEAD" else payload)

    def _content_type(self) -> str:
        return self.media.content_type()

    def _finish(self) -> None:
        """Commit, or roll back when `Prefer: tx=rollback` / `db-tx-end` says so."""
        tx_end = self.config.tx_end
        rollback = self.prefs.tx == "rollback" or (tx_end.startswith("rollback") and self.prefs.tx != "commit")
        if rollback:
            # Deferred constraints must still fail the request (MainTx.hs optionalRollback).
            self._exec(raw("SET CONSTRAINTS ALL IMMEDIATE"))
            self.conn.rollback()
        else:
            self.conn.commit()

    # --- writes ------------------------------------------------------------------------------

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
        counting = self.prefs.count in ("exact", "estimated")
        represent = self.prefs.return_ == "representation"
        headers: list[tuple[str, str]] = []
        payload = b""
        if kind == "insert":
            if location:
                headers.append(("Location", "/" + table.name + _location_query(location, table.pk)))
            headers.append(("Content-Range", _content_range(1, 0, page_total if counting else None)))
            applied = _applied(self.prefs, resolution=True, missing=True, return_=True, max_affected=False)
            if applied:
                headers.append(("Preference-Applied", applied))
            status = 200 if (merge and (inserted or 0) <= 0) else 201
            if represent:
                payload = body.encode("utf-8")
                headers.append(("Content-Type", self._content_type()))
                headers.extend(self._profile_headers())
        elif kind == "put":
            applied = _applied(self.prefs, resolution=False, missing=False, return_=True, max_affected=False)
            if represent:
                status = 201 if (inserted or 0) > 0 else 200
                payload = body.encode("utf-8")
                headers.append(("Content-Type", self._content_type()))
                headers.extend(self._profile_headers())
            else:
                status = 204
            if applied:
                headers.append(("Preference-Applied", applied))
        else:
            if kind == "update":
                headers.append(("Content-Range", _content_range(0, page_total - 1, page_total if counting else None)))
            else:
                headers.append(("Content-Range", _content_range(1, 0, page_total if counting else None)))
            applied = _applied(
                self.prefs, resolution=False, missing=kind == "update", return_=True, max_affected=True
            )
            if applied:
                headers.append(("Preference-Applied", applied))
            if represent:
                status = 200
                payload = body.encode("utf-8")
                headers.append(("Content-Type", self._content_type()))
                headers.extend(self._profile_headers())
            else:
                status = 204
        # PostgREST builds the response after COMMIT: a bad response GUC is a 500 on committed data.
        self._finish()
        status, headers = _override(status, headers, resp_status, resp_headers)
        return ApiResponse(status, headers, payload)

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

    # --- RPC ---------------------------------------------------------------------------------

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
        scalar = not func.returns_composite
        call = self._call_sql(func, keys, one_json)
        src = Source(raw("pgrst_source"), func.return_types)
        rng = _cap(self.range, self.config.max_rows)
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
        if self.prefs.handling == "strict" and self.prefs.max_affected is not None and not func.returns_set:
            raise PgrstError(
                400,
                "PGRST128",
                "Function must return SETOF or TABLE when max-affected preference is used with handling=strict",
            )
        self._set_config()
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
            _total, _page, _body, resp_headers, resp_status = row
            headers = [("Content-Range", _content_range(rng.offset, rng.offset + _page - 1, _total))]
            applied = _applied(self.prefs, resolution=False, missing=False, return_=False, max_affected=True)
            if applied:
                headers.append(("Preference-Applied", applied))
            # PostgREST builds the response after COMMIT: a bad response GUC is a 500 on committed data.
            self._finish()
            status, headers = _override(204, headers, resp_status, resp_headers)
            return ApiResponse(status, headers, b"")
        return self._rpc_response(row, rng)

    def _rpc_response(self, row: tuple[Any, ...], rng: Range) -> ApiResponse:
        total, page_total, body, resp_headers, resp_status = row
        lower = rng.offset
        upper = lower + page_total - 1
        status = 200
        if total is not None:
            if lower > total:
                status = 416
            elif (1 + upper - lower) < total:
                status = 206
        if self.singular and page_total != 1:
            raise PgrstError(
                406,
                "PGRST116",
                "Cannot coerce the result to a single JSON object",
                f"The result contains {page_total} rows",
            )
        headers = [("Content-Range", _content_range(lower, upper, total))]
        applied = _applied(self.prefs, resolution=False, missing=False, return_=False, max_affected=True)
        if applied:
            headers.append(("Preference-Applied", applied))
        payload = body.encode("utf-8")
        if status == 416:
            payload = PgrstError(
                416,
                "PGRST103",
                "Requested range not satisfiable",
                f"An offset of {lower} was requested, but there are only {total} rows.",
            ).body()
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

    # --- OPTIONS / root ----------------------------------------------------------------------

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


# --- helpers ----------------------------------------------------------------------------------


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pg_text_array(values: list[str]) -> str:
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


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


def _content_range(lower: int, upper: int, total: int | None) -> str:
    total_s = "*" if total is None else str(total)
    if total != 0 and lower <= upper:
        return f"{lower}-{upper}/{total_s}"
    return f"*/{total_s}"


def _canonical_query(query: list[tuple[str, str]]) -> str:
    # Like Haskell HTTP's `urlEncodeVars` over the key-sorted pairs: repeated keys are grouped
    # into one `k=v1,v2` item and everything but [A-Za-z0-9-_.~] is percent-encoded.
    pairs = sorted(query, key=lambda kv: kv[0])
    out: list[str] = []
    while pairs:
        key = pairs[0][0]
        same = [v for k, v in pairs if k == key]
        pairs = [(k, v) for k, v in pairs if k != key]
        out.append(_url_encode(key) + "=" + ",".join(_url_encode(v) for v in same))
    return "&".join(out)


def _url_encode(text: str) -> str:
    return urllib.parse.quote(text, safe="-_.~")


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


def _override(
    status: int, headers: list[tuple[str, str]], resp_status: str | None, resp_headers: str | None
) -> tuple[int, list[tuple[str, str]]]:
    """`response.status` / `response.headers` GUCs set by the SQL (Response.hs overrideStatusHeaders)."""
    if resp_status is not None:
        m = re.match(r"[0-9]+", resp_status)
        if not m:
            raise PgrstError(500, "PGRST112", "response.status guc must be a valid status code")
        status = int(m.group(0))
    if resp_headers is not None:
        try:
            decoded = json.loads(resp_headers)
            if not isinstance(decoded, list) or not all(
                isinstance(h, dict) and len(h) == 1 and all(isinstance(v, str) for v in h.values()) for h in decoded
            ):
                raise ValueError
        except ValueError:
            raise PgrstError(
                500, "PGRST111", "response.headers guc must be a JSON array composed of objects with a single key and a string value"
            ) from None
        extra = [(k, v) for h in decoded for k, v in h.items()]
        own = {k.lower() for k, _ in extra}
        headers = [(k, v) for k, v in headers if k.lower() not in own] + extra
    return status, headers

