"""What came back over the wire, mapped to the package's exceptions, in one place.

`from_api_error` reads a PostgREST or gateway error answer, `from_transport_error` an httpx
failure with no answer, `decode_rows`/`decode_json`/`content_range_count` the 2xx bodies (strictly:
a body that is not what the operation expects raises `InvalidResponse`, never "nothing").
Only the transport calls these.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import (
    OUR_MESSAGE_PREFIX,
    AuthenticationError,
    ConfigurationError,
    DuplicateDocument,
    FunctionMissing,
    InvalidDocument,
    InvalidResponse,
    PermissionDenied,
    RequestError,
    RequestTooLarge,
    SchemaNotExposed,
    SupabaseSyncError,
    TableMissing,
    TransientError,
    scrub,
)
from .naming import prefix_for_table

__all__ = [
    "content_range_count",
    "decode_json",
    "decode_rows",
    "from_answer",
    "from_api_error",
    "from_invalid_url",
    "from_transport_error",
    "invalid",
]

_KEY_ADVICE = (
    "Check SUPABASE_KEY: use the project's secret key (sb_secret_…) or the legacy service_role "
    "key from Dashboard → Project Settings → API Keys."
)
_PERMISSION_ADVICE = (
    "The key in SUPABASE_KEY runs as a role without access to this table: use the secret key "
    "(sb_secret_…) or the legacy service_role key (it bypasses RLS), or grant the role access "
    "and add a row-level-security policy for it."
)
_TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})
_TRANSIENT_PGRST = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})
_AUTH_PGRST = frozenset({"PGRST300", "PGRST301", "PGRST302", "PGRST303"})
_INVALID_DOCUMENT_SQLSTATES = frozenset({"22P05", "22P02", "22030", "2202E"})

_TABLE_IN_MESSAGE = re.compile(r"table '(?:[^'.]+\.)?([^']+)'")
_RELATION_IN_MESSAGE = re.compile(r'relation "(?:[^".]+\.)?([^"]+)"')
_FUNCTION_IN_MESSAGE = re.compile(r"function (?:[A-Za-z0-9_]+\.)?([A-Za-z0-9_]+)\(")
_SCHEMA_IN_MESSAGE = re.compile(r"Invalid schema: ([^\s,;]+)")
_EXPOSE_ADVICE = (
    "add it under Supabase Dashboard → Project Settings → Data API → Exposed schemas "
    "(self-hosted: PGRST_DB_SCHEMAS; Supabase CLI: [api] schemas in supabase/config.toml), "
    "or set SUPABASE_SCHEMA to an exposed schema"
)


def _text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _prefix_for(table: str | None) -> list[str]:
    if table is None:
        return []
    prefix = prefix_for_table(table)
    return [prefix] if prefix is not None else []


def from_api_error(
    body: Mapping[str, Any] | None, status: int | None, *, table: str | None = None
) -> SupabaseSyncError:
    """Turn a PostgREST or gateway error response into the matching exception.

    `body` is the decoded JSON error body (`code`, `message`, `details`, `hint`), or None when
    the response had no JSON body; `table` names the collection table the request was for.
    """
    body = body if isinstance(body, Mapping) else {}
    code = _text(body, "code")
    server_message = (
        _text(body, "message") or _text(body, "msg") or _text(body, "error") or ""
    )
    details = _text(body, "details")
    hint = _text(body, "hint")
    where = f" on table {table}" if table else ""
    fields: dict[str, Any] = {
        "code": code,
        "status": status,
        "details": details,
        "hint": hint,
    }
    summary = server_message or (
        f"HTTP {status}" if status is not None else "no response body"
    )

    if code == "PGRST205" or code == "42P01":
        match = _TABLE_IN_MESSAGE.search(server_message) or _RELATION_IN_MESSAGE.search(
            server_message
        )
        name = table or (match.group(1) if match else None)
        return TableMissing(
            tables=[name] if name else [], prefixes=_prefix_for(name), **fields
        )
    if code == "PGRST202":
        match = _FUNCTION_IN_MESSAGE.search(server_message)
        return FunctionMissing(functions=[match.group(1)] if match else [], **fields)
    if code == "PGRST106":
        return _schema_not_exposed(server_message, hint, fields)
    if code == "23505":
        return DuplicateDocument(
            f"a document with this id already exists{where} ({summary})", **fields
        )
    if code == "42501":
        return PermissionDenied(
            f"permission denied{where}: {summary}. {_PERMISSION_ADVICE}", **fields
        )
    if code in _INVALID_DOCUMENT_SQLSTATES:
        return InvalidDocument(
            f"the database rejected a document value{where}: {summary}. PostgreSQL jsonb cannot "
            "store \\u0000 in strings or NaN/Infinity numbers; remove them before writing.",
            **fields,
        )
    if code in _AUTH_PGRST:
        return AuthenticationError(
            f"PostgREST rejected the credentials ({summary}). {_KEY_ADVICE}", **fields
        )
    if code is not None and server_message.startswith(OUR_MESSAGE_PREFIX):
        return RequestError(server_message, **fields)
    if (
        code in _TRANSIENT_SQLSTATES
        or code in _TRANSIENT_PGRST
        or (code is not None and code.startswith("08"))
        or status in _TRANSIENT_STATUSES
    ):
        return TransientError(
            f"temporary failure{where}: {summary}; the request may be retried",
            # PostgREST rolls back before answering with an error code; a bare 502/504 from
            # the gateway can arrive after the database committed.
            maybe_applied=code is None and status in (502, 503, 504),
            **fields,
        )
    if status == 401:
        lowered = server_message.lower()
        if "legacy api keys are disabled" in lowered:
            advice = (
                "Legacy JWT keys are disabled for this project: set SUPABASE_KEY to a secret "
                "key (sb_secret_…) from Dashboard → Project Settings → API Keys."
            )
        elif "browser" in lowered:
            advice = "Secret keys are refused from browser-like clients; do not set a browser User-Agent."
        elif "no api key" in lowered:
            advice = "No API key reached Supabase: set SUPABASE_KEY."
        else:
            advice = _KEY_ADVICE
        return AuthenticationError(
            f"Supabase rejected the API key ({summary}). {advice}", **fields
        )
    if status == 403 and code is None:
        return PermissionDenied(
            f"access denied{where}: {summary}. {_PERMISSION_ADVICE}", **fields
        )
    label = f"{code}, HTTP {status}" if code and status else (code or f"HTTP {status}")
    return RequestError(f"request failed{where} ({label}): {summary}", **fields)


def _schema_not_exposed(
    server_message: str, hint: str | None, fields: dict[str, Any]
) -> SchemaNotExposed:
    # PostgREST 12+: "Invalid schema: S" + hint "Only the following schemas are exposed: …";
    # older releases: "The schema must be one of the following: …" and no hint.
    match = _SCHEMA_IN_MESSAGE.search(server_message)
    schema = match.group(1) if match else None
    subject = f"schema {schema!r}" if schema else "the schema in SUPABASE_SCHEMA"
    said = "; ".join(part.strip().rstrip(".") for part in (server_message, hint) if part)
    return SchemaNotExposed(
        f"{subject} is not exposed by the Supabase Data API (PostgREST PGRST106: {said}): "
        f"{_EXPOSE_ADVICE}",
        schema=schema,
        **fields,
    )


def from_transport_error(exc: httpx.TransportError) -> SupabaseSyncError:
    """Turn an httpx transport failure (no HTTP response) into the matching exception."""
    try:
        target = f" {exc.request.method} {exc.request.url.copy_with(query=None)}"
    except RuntimeError:  # the exception was raised without a request attached
        target = ""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ConfigurationError(
            f"cannot send{target}: {reason}. Set SUPABASE_URL to your project URL, "
            "e.g. https://<ref>.supabase.co"
        )
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return TransientError(
            f"could not reach Supabase for{target}: {reason}", maybe_applied=False
        )
    if isinstance(
        exc, (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
    ):
        return TransientError(f"connection to Supabase failed during{target}: {reason}")
    return RequestError(f"HTTP transport error for{target}: {reason}")


def from_invalid_url(exc: Exception, *, table: str | None = None) -> SupabaseSyncError:
    """httpx refused to build the URL (too long, or not a URL at all)."""
    where = f" for table {table}" if table else ""
    return RequestTooLarge(
        f"the request URL{where} could not be built ({type(exc).__name__}: {scrub(str(exc))[:120]}). "
        "If SUPABASE_URL is right, the filter is too large for one URL: report this as a bug."
    )


def _body_json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


def from_answer(response: httpx.Response, *, table: str | None = None) -> SupabaseSyncError:
    """The exception for a non-2xx answer."""
    status = response.status_code
    payload = _body_json(response)
    if status == 414 or status == 431:
        return RequestTooLarge(
            f"the gateway refused the request as too large (HTTP {status}): the URL or headers "
            "exceed its limit. The adapter keeps URLs under PARLANT_SUPABASE_MAX_URL_BYTES; lower "
            "it if a proxy in between has a smaller limit.",
            status=status,
        )
    if status == 404 and table is not None and payload == {}:
        # PostgREST v12.2 answers a write into a missing table with 404 and `{}`.
        return from_api_error({"code": "PGRST205"}, status, table=table)
    if isinstance(payload, Mapping):
        return from_api_error(payload, status, table=table)
    text = response.text[:200] if response.content else ""
    body = {"message": _summary(text)} if text else None
    return from_api_error(body, status, table=table)


def _summary(text: str) -> str:
    """A short, single-line, secret-free digest of a non-JSON body (HTML pages included)."""
    title = re.search(r"(?is)<title>(.*?)</title>", text)
    line = title.group(1) if title else text
    return scrub(" ".join(line.split()))[:120]


def invalid(response: httpx.Response, table: str | None, what: str) -> InvalidResponse:
    """The error for a 2xx answer that is not what the operation expects."""
    where = f" for table {table}" if table else ""
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    return InvalidResponse(
        f"the server answered HTTP {response.status_code}{where} with {what} ({kind}, "
        f"{len(response.content)} bytes): a proxy or a broken connection changed the answer",
        status=response.status_code,
    )


def decode_json(response: httpx.Response, *, table: str | None = None) -> Any:
    """The JSON value of a 2xx body; `InvalidResponse` when it is empty or not JSON."""
    if not response.content:
        raise invalid(response, table, "an empty body")
    try:
        return json.loads(response.content)
    except ValueError:
        raise invalid(response, table, "a body that is not JSON") from None


def decode_rows(response: httpx.Response, *, table: str | None = None) -> list[dict[str, Any]]:
    """The rows of a 2xx read: a JSON array of objects (a HEAD answer has none)."""
    if response.request.method == "HEAD":
        return []
    rows = decode_json(response, table=table)
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise invalid(response, table, "JSON that is not an array of rows")
    return rows


def content_range_count(response: httpx.Response, *, table: str | None = None) -> int:
    """The total after `/` in Content-Range (asked for with `Prefer: count=exact`)."""
    value = response.headers.get("content-range", "")
    total = value.rpartition("/")[2].strip()
    if not total.isdigit():
        raise invalid(response, table, "no usable Content-Range count")
    return int(total)
