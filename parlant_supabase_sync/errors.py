"""Exceptions raised by parlant-supabase-sync (the mapping from wire answers is in `wire.py`).

Callers catch meaning (`TableMissing`, `DuplicateDocument`, `PermissionDenied`,
`TransientError`), not status codes. Every exception carries `.code`, `.status`, `.details` and
`.hint` when the server gave them, and its text never contains an API key or a JWT.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

__all__ = [
    "KEPT_PROBLEMS",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictReport",
    "DuplicateDocument",
    "ExportTargetError",
    "FunctionMissing",
    "ImportConflict",
    "ImportInvalid",
    "InvalidDocument",
    "InvalidResponse",
    "PermissionDenied",
    "RequestError",
    "RequestTooLarge",
    "SchemaMissing",
    "SchemaNotExposed",
    "SupabaseSyncError",
    "TableMissing",
    "TransientError",
    "UnsupportedFilter",
    "scrub",
    "sql_command",
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


def sql_command(
    prefixes: Iterable[str] = (), *, schema: str | None = None, upgrade: bool = False
) -> str:
    """The shell command printing the generated SQL (`--prefix` per store, `--schema` when not
    public, `--upgrade` for tables or functions of an earlier release), into schema.sql or
    upgrade.sql: the one spelling of that command in messages."""
    options = "".join(f" --prefix {prefix}" for prefix in prefixes)
    if schema and schema != "public":
        options += f" --schema {schema}"
    if upgrade:
        options += " --upgrade"
    return f"parlant-supabase-sync sql{options} > {'upgrade.sql' if upgrade else 'schema.sql'}"


class SchemaMissing(SupabaseSyncError):
    """Tables or SQL functions the adapter needs do not exist in the database (or are of an
    earlier release: `outdated`, fixed by `sql --upgrade`).

    `prefixes` and `schema` are what the generating command needs (`command`).
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        tables: Iterable[str] = (),
        functions: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        outdated: Iterable[str] = (),
        schema: str | None = None,
        code: str | None = None,
        status: int | None = None,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.tables = tuple(dict.fromkeys(tables))
        self.functions = tuple(dict.fromkeys(functions))
        self.prefixes = tuple(dict.fromkeys(prefixes))
        self.outdated = tuple(dict.fromkeys(outdated))
        self.schema = schema
        if message is None:
            message = self._describe()
        super().__init__(message, code=code, status=status, details=details, hint=hint)

    @property
    def command(self) -> str:
        """The shell command that prints the SQL creating (or upgrading) what is missing."""
        return sql_command(self.prefixes, schema=self.schema, upgrade=bool(self.outdated))

    def _describe(self) -> str:
        missing = []
        if self.tables:
            missing.append("table(s) " + ", ".join(self.tables))
        if self.functions:
            missing.append("function(s) " + ", ".join(self.functions))
        if self.outdated:
            missing.append("an upgrade of " + ", ".join(self.outdated))
        what = " and ".join(missing) if missing else "required objects"
        upgrade = (
            ""
            if self.outdated
            else "; databases set up from the older adapter's SQL need "
            "`parlant-supabase-sync sql --upgrade` instead"
        )
        script = self.command.rpartition("> ")[2]
        return (
            f"the database is missing {what}. Generate the SQL with `{self.command}` and run "
            f"{script} in the Supabase SQL editor (Dashboard → SQL Editor), or with "
            f'`psql "$DATABASE_URL" -f {script}` on a local stack{upgrade}.'
        )


class TableMissing(SchemaMissing):
    """A collection's table does not exist (PostgREST PGRST205, SQLSTATE 42P01)."""


class FunctionMissing(SchemaMissing):
    """An adapter SQL function does not exist (PostgREST PGRST202)."""


class SchemaNotExposed(ConfigurationError):
    """The API does not serve the configured schema (PostgREST PGRST106).

    `schema` is the schema asked for; `.hint` keeps PostgREST's list of exposed schemas.
    """

    def __init__(
        self,
        message: str,
        *,
        schema: str | None = None,
        code: str | None = None,
        status: int | None = None,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, details=details, hint=hint)
        self.schema = schema


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


class InvalidResponse(TransientError):
    """A 2xx answer whose body is not what the operation expects (not JSON, HTML, cut short,
    the wrong JSON type, a missing count). Never read as "nothing": reads are retried, and a
    write is retried only under its request id, so it cannot be applied twice."""


class RequestTooLarge(RequestError):
    """The request could not be sent as built (URL over the gateway's limit, 414, invalid URL)."""


# --- bulk work (bulk.py raises these) -------------------------------------------------------


#: Problems and conflicts kept on an import error or report (the rest are counted).
KEPT_PROBLEMS = 100


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class ImportInvalid(SupabaseSyncError, ValueError):
    """The input has bad lines; nothing was written. `problems`: (line, reason), the first 100."""

    def __init__(self, problems: Sequence[tuple[int, str]], count: int) -> None:
        self.problems = list(problems[:KEPT_PROBLEMS])
        self.count = count  # every bad line
        line, reason = problems[0]
        message = f"line {line}: {reason}; fix it and run the import again (nothing was written"
        if count > 1:
            more = [str(n) for n, _ in problems[1:6]]
            message += f"; {count - 1} more bad line(s): {', '.join(more)}"
            message += ", …" if count > 6 else ""
        super().__init__(_one_line(message + ")"))


class ConflictReport(Protocol):
    """What `ImportConflict` reads of its `bulk.ImportReport` (this module imports nothing from
    the package)."""

    @property
    def table(self) -> str: ...

    @property
    def changed(self) -> int: ...

    @property
    def conflicts(self) -> list[dict[str, Any]]: ...


class ImportConflict(SupabaseSyncError, ValueError):
    """Documents with these ids exist with different content; nothing was written."""

    def __init__(self, report: ConflictReport) -> None:
        self.report = report
        first = report.conflicts[0]
        super().__init__(
            _one_line(
                f"{report.changed} document(s) already exist in {report.table} with different "
                f"content (first: line {first['line']}, id {first['id']!r}); nothing was "
                "written: replace them (--replace, on_conflict='replace') or keep the stored "
                "ones (--ignore, on_conflict='ignore')"
            )
        )


class ExportTargetError(ConfigurationError):
    """The export's output cannot take what was asked (found before any request)."""
