"""Exceptions raised by parlant-supabase-sync, and the mapping from PostgREST/HTTP failures.

Callers catch meaning (`TableMissing`, `DuplicateDocument`, `PermissionDenied`,
`TransientError`), not status codes. Every exception carries `.code`, `.status`, `.details` and
`.hint` when the server gave them, and its text never contains an API key or a JWT.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "DuplicateDocument",
    "FunctionMissing",
    "InvalidDocument",
    "PermissionDenied",
    "RequestError",
    "SchemaMissing",
    "SupabaseSyncError",
    "TableMissing",
    "TransientError",
    "UnsupportedFilter",
    "from_api_error",
    "from_transport_error",
    "scrub",
]

OUR_MESSAGE_PREFIX = "parlant-supabase-sync:"

# Server text can echo request headers (PostgREST puts them in `request.headers`, gateways
# sometimes quote the key back), so anything shaped like a credential is cut out.
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\bbearer\s+[^\s\"',;]+"), "Bearer [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}"), "[redacted-jwt]"),
    (re.compile(r"\bsb_(secret|publishable)_[A-Za-z0-9_-]+"), r"sb_\1_[redacted]"),
    (re.compile(r"\bsbp_[A-Za-z0-9_-]+"), "sbp_[redacted]"),
)


def scrub(text: str) -> str:
    """Remove anything that looks like an API key, a JWT or an Authorization value."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub_optional(text: object) -> str | None:
    if text is None:
        return None
    return scrub(text if isinstance(text, str) else str(text))


def _rebuild(
    cls: type[SupabaseSyncError], message: str, state: dict[str, Any]
) -> SupabaseSyncError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class SupabaseSyncError(Exception):
    """Base class of every error raised by parlant-supabase-sync."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        message = scrub(message)
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = _scrub_optional(details)
        self.hint = _scrub_optional(hint)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        if self.code is not None:
            parts.append(f"code={self.code!r}")
        if self.status is not None:
            parts.append(f"status={self.status!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class ConfigurationError(SupabaseSyncError, ValueError):
    """Settings or arguments are missing or invalid; the message names what to set."""


class SchemaMissing(SupabaseSyncError):
    """Tables or SQL functions the adapter needs do not exist in the database."""

    def __init__(
        self,
        message: str | None = None,
        *,
        tables: Iterable[str] = (),
        functions: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        code: str | None = None,
        status: int | None = None,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.tables = tuple(dict.fromkeys(tables))
        self.functions = tuple(dict.fromkeys(functions))
        self.prefixes = tuple(dict.fromkeys(prefixes))
        if message is None:
            message = self._describe()
        super().__init__(message, code=code, status=status, details=details, hint=hint)

    @property
    def command(self) -> str:
        """The shell command that prints the SQL creating what is missing."""
        options = "".join(f" --prefix {prefix}" for prefix in self.prefixes)
        return f"parlant-supabase-sync sql{options} > schema.sql"

    def _describe(self) -> str:
        missing = []
        if self.tables:
            missing.append("table(s) " + ", ".join(self.tables))
        if self.functions:
            missing.append("function(s) " + ", ".join(self.functions))
        what = " and ".join(missing) if missing else "required objects"
        return (
            f"the database is missing {what}. Generate the SQL with `{self.command}` and run "
            "schema.sql in the Supabase SQL editor (Dashboard → SQL Editor); databases set up "
            "from the older adapter's SQL need `parlant-supabase-sync sql --upgrade` instead."
        )


class TableMissing(SchemaMissing):
    """A collection's table does not exist (PostgREST PGRST205, SQLSTATE 42P01)."""


class FunctionMissing(SchemaMissing):
    """An adapter SQL function does not exist (PostgREST PGRST202)."""


class DuplicateDocument(SupabaseSyncError, ValueError):
    """A document with the same id already exists (SQLSTATE 23505)."""


class UnsupportedFilter(SupabaseSyncError, ValueError):
    """A `Where` filter uses an operator or value the adapter cannot translate."""


class InvalidDocument(SupabaseSyncError, ValueError):
    """A document holds a value PostgreSQL jsonb cannot store (e.g. \\u0000, NaN, Infinity)."""


class PermissionDenied(SupabaseSyncError):
    """The key's database role may not touch the table (SQLSTATE 42501, RLS)."""


class AuthenticationError(SupabaseSyncError):
    """The API key is missing, unknown, disabled or not accepted by PostgREST."""


class TransientError(SupabaseSyncError):
    """A failure worth retrying: connection problems, 502/503/504, serialization failures.

    `maybe_applied` is True when the request may have reached the database before failing,
    so only idempotent requests should be retried blindly.
    """

    def __init__(
        self,
        message: str,
        *,
        maybe_applied: bool = True,
        code: str | None = None,
        status: int | None = None,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, details=details, hint=hint)
        self.maybe_applied = maybe_applied


class RequestError(SupabaseSyncError):
    """Any other error reported by PostgREST or the gateway."""


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


def _text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _prefix_for(table: str | None) -> list[str]:
    if table is None:
        return []
    from parlant_supabase_sync.naming import prefix_for_table

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


def from_transport_error(exc: httpx.TransportError) -> SupabaseSyncError:
    """Turn an httpx transport failure (no HTTP response) into the matching exception."""
    import httpx

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
