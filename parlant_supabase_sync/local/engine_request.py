"""The engine's request stage: its data types and what PostgREST's `ApiRequest` parses.

`ApiRequest`/`ApiResponse`/`EngineConfig` (re-exported by `engine.py`), `Prefer` header
parsing (`Preferences.hs`), the range (`RangeQuery.hs`), content negotiation (`MediaType.hs`)
and the body (`ApiRequest/Payload.hs`).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from . import schema_cache
from .errors import JSON_CONTENT_TYPE, PgrstError
from .grammar import ParsedQuery


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
