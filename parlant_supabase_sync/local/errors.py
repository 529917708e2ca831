"""PostgREST-shaped error responses for the local stand-in.

`PgrstError` is both the exception the engine raises for request errors and the value that
renders the response; `from_pg_error` maps a PostgreSQL error to it the way PostgREST v14's
`pgErrorStatus` does (postgrest-protocol.md §12).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import psycopg

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


class PgrstError(Exception):
    """An error response: HTTP status plus PostgREST's `{code, details, hint, message}` body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = list(headers)

    def body(self) -> bytes:
        """The JSON body, keys in PostgREST's (alphabetical) order."""
        payload = {"code": self.code, "details": self.details, "hint": self.hint, "message": self.message}
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def response_headers(self) -> list[tuple[str, str]]:
        """Headers of the error response (Content-Type, Proxy-Status, WWW-Authenticate, extras)."""
        out = [("Content-Type", JSON_CONTENT_TYPE), ("Proxy-Status", f"PostgREST; error={self.code}")]
        names = {name.lower() for name, _ in self.headers}
        if self.status == 401 and "www-authenticate" not in names:
            out.append(("WWW-Authenticate", "Bearer"))
        if self.status == 503 and "retry-after" not in names:
            out.append(("Retry-After", "0"))
        out.extend(self.headers)
        return out

    def __repr__(self) -> str:
        return f"PgrstError(status={self.status}, code={self.code!r}, message={self.message!r})"


_PREFIX_STATUS = (
    ("08", 503),
    ("09", 500),
    ("0L", 403),
    ("0P", 403),
    ("25", 500),
    ("28", 403),
    ("2D", 500),
    ("38", 500),
    ("39", 500),
    ("3B", 500),
    ("40", 500),
    ("54", 500),
    ("55", 500),
    ("58", 500),
    ("F0", 500),
    ("HV", 500),
    ("XX", 500),
)
_EXACT_STATUS = {
    "23503": 409,
    "23505": 409,
    "25006": 405,
    "53400": 500,
    "57P01": 503,
    "P0001": 400,
    "42P01": 404,
    "42P17": 500,
}
_ROLE_MISSING = re.compile(r"^role .* does not exist$", re.DOTALL)


def sqlstate_status(sqlstate: str, message: str, *, is_anon: bool) -> int:
    """HTTP status for a SQLSTATE, as PostgREST's `pgErrorStatus` (§12.3)."""
    if sqlstate in _EXACT_STATUS:
        return _EXACT_STATUS[sqlstate]
    if sqlstate == "21000":
        return 400 if message.endswith("requires a WHERE clause") else 500
    if sqlstate == "22023":
        return 401 if _ROLE_MISSING.match(message) else 400
    if sqlstate == "42883":
        return 406 if message.startswith("function xmlagg(") else 404
    if sqlstate == "42501":
        return 401 if is_anon else 403
    if sqlstate.startswith("PT"):
        try:
            status = int(sqlstate[2:])
        except ValueError:
            return 500
        return status if 100 <= status <= 999 else 500
    for prefix, status in _PREFIX_STATUS:
        if sqlstate.startswith(prefix):
            return status
    if sqlstate.startswith("53"):
        return 503
    if sqlstate.startswith("57"):
        return 500
    if sqlstate.startswith("P0"):
        return 500
    return 400


def _raise_pgrst(message: str, detail: str | None) -> PgrstError:
    """`RAISE SQLSTATE 'PGRST' USING message = '{json}', detail = '{json}'` (docs errors.rst)."""
    try:
        msg = json.loads(message)
        if not isinstance(msg, dict) or not isinstance(msg.get("code"), str) or not isinstance(msg.get("message"), str):
            raise TypeError
    except (TypeError, ValueError):
        return PgrstError(
            500,
            "PGRST121",
            "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
            f"Invalid JSON value for MESSAGE: '{message}'",
            "MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and optional keys: 'details', 'hint'.",
        )
    if detail is None:
        return PgrstError(
            500,
            "PGRST121",
            "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
            "DETAIL is missing in the RAISE statement",
            "DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional key: 'status_text'.",
        )
    try:
        det = json.loads(detail)
        if not isinstance(det, dict) or not isinstance(det.get("status"), int) or not isinstance(det.get("headers"), dict):
            raise TypeError
    except (TypeError, ValueError):
        return PgrstError(
            500,
            "PGRST121",
            "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
            f"Invalid JSON value for DETAIL: '{detail}'",
            "DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional key: 'status_text'.",
        )
    headers = [(str(k), str(v)) for k, v in det["headers"].items()]

    def text_or_none(value: Any) -> str | None:
        return value if isinstance(value, str) else None

    return PgrstError(
        det["status"], msg["code"], msg["message"], text_or_none(msg.get("details")), text_or_none(msg.get("hint")), headers
    )


def from_pg_error(exc: psycopg.Error, role: str, anon_role: str) -> PgrstError:
    """Translate a psycopg error raised inside a request into PostgREST's response."""
    sqlstate = exc.sqlstate
    if sqlstate is None:
        # No server error: the connection itself failed (PostgREST: ConnectionUsageError).
        return PgrstError(503, "PGRST000", "Database connection error. Retrying the connection.", str(exc) or None)
    diag = exc.diag
    message = diag.message_primary or str(exc)
    detail = diag.message_detail
    hint = diag.message_hint
    if sqlstate == "PGRST":
        return _raise_pgrst(message, detail)
    status = sqlstate_status(sqlstate, message, is_anon=role == anon_role)
    return PgrstError(status, sqlstate, message, detail, hint)
