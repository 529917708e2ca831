"""The engine's shared request context (`RequestStage`) and response helpers."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

import psycopg

from . import schema_cache
from .engine_request import (
    _TABLE_METHODS,
    JSON_MEDIA,
    ApiRequest,
    EngineConfig,
    Media,
    Payload,
    Prefs,
    Range,
    _accept,
    _parse_payload,
    _parse_prefs,
    _range,
)
from .errors import PgrstError
from .grammar import GrammarError, ParsedQuery, parse_query
from .sqlbuild import (
    Frag,
    join,
    param,
    raw,
)


class RequestStage:
    """What every stage shares: the request, its parsed parts, the transaction, the cache.

    `engine._Request` combines the stages (`ReadStage`, `WriteStage`, `RpcStage`); the
    attributes below are set by `_route()` and `_begin()` before any stage runs.
    """

    path: str
    schema: str
    by_profile: bool
    q: ParsedQuery
    range: Range
    payload: Payload | None
    prefs: Prefs
    media: Media
    accept_error: PgrstError | None
    singular: bool

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

    def _route(self) -> tuple[str, str]:
        """Resource kind and name, schema and method checks (PostgREST's `userApiRequest`)."""
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
        return kind, name

    def _begin(self, kind: str) -> None:
        """Query string, range, body, transaction mode, preferences and media type."""
        rpc_read = kind == "rpc" and self.method in ("GET", "HEAD")
        try:
            self.q = parse_query(self.req.query, rpc_read=rpc_read)
        except GrammarError as err:
            raise PgrstError(400, "PGRST100", err.message, err.details) from None
        self.range = _range(self.q, self.headers.get("range"), self.method)
        is_write = self.method in ("POST", "PATCH", "PUT", "DELETE")
        self.payload = None
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
            self.accept_error = None
        except PgrstError as err:
            self.media = JSON_MEDIA
            self.accept_error = err
        self.singular = self.media.singular

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
    def _content_type(self) -> str:
        return self.media.content_type()

    def _page_status(
        self, rng: Any, total: int | None, page_total: int
    ) -> tuple[int, list[tuple[str, str]]]:
        """Status (200, 206 or 416) and Content-Range of a page; PGRST116 when singular."""
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
        return status, [("Content-Range", _content_range(lower, upper, total))]

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

# --- helpers ----------------------------------------------------------------------------------


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _range_refusal(rng: Any, total: int | None) -> bytes:
    """The 416 body for an offset past the end (PGRST103)."""
    return PgrstError(
        416,
        "PGRST103",
        "Requested range not satisfiable",
        f"An offset of {rng.offset} was requested, but there are only {total} rows.",
    ).body()


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
