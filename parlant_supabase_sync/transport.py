"""The one send path: every HTTP request of the package goes through :class:`Transport`.

It builds each request with the real postgrest client (``SyncPostgrestClient``) over the one
shared HTTP/1.1 ``httpx.Client``, sends it, decodes the answer strictly (:mod:`.wire`), applies
the retry policy and counts every attempt. Nothing else in the package sends HTTP.

Retries (``settings.retry``): connection failures, 502/503/504, PostgREST's PGRST000–003 and
2xx answers whose body is not what the operation expects. A request is repeated only when that
cannot apply it twice: reads, and writes that carry a request id the server records its outcome
under (``parlant_write``). Table and function names are percent-encoded as one path segment,
so no name can reach another table or API.

The shared ``httpx.Client`` is never closed by the postgrest client: nothing here calls
``auth()``, ``aclose()`` or uses it as a context manager.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import quote

import httpx
from postgrest import SyncPostgrestClient

from . import __version__, wire
from .errors import SupabaseSyncError
from .naming import validate_table_name
from .retry import call_with_retry
from .settings import SupabaseSettings, key_kind

__all__ = [
    "USER_AGENT",
    "Answer",
    "Expect",
    "OperationStats",
    "RequestStats",
    "Transport",
    "auth_headers",
    "build_http_client",
]

USER_AGENT = f"parlant-supabase-sync/{__version__} (python-httpx)"


def build_http_client(settings: SupabaseSettings) -> httpx.Client:
    """The HTTP/1.1 client every request of one database goes through.

    HTTP/1.1 because httpcore's HTTP/2 is not thread-safe; a pool at least as large as the
    worker count; explicit timeouts; no proxy variables from the environment; no redirects.
    """
    size = max(settings.http_pool_size, settings.max_workers)
    return httpx.Client(
        http1=True,
        http2=False,
        timeout=settings.timeouts.as_httpx(),
        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
        trust_env=False,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )


def auth_headers(settings: SupabaseSettings) -> dict[str, str]:
    """``apikey`` for every key; ``Authorization: Bearer`` only for legacy JWT keys.

    New ``sb_…`` keys are not JWTs: the gateway turns them into one, and sending them as a
    bearer token breaks some self-hosted stacks (shared/supabase-keys.md §4).
    """
    key = settings.key.get_secret_value()
    headers = {"apikey": key}
    if key_kind(key) == "legacy_jwt":
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _build_postgrest_client(settings: SupabaseSettings, http: httpx.Client) -> SyncPostgrestClient:
    kwargs: dict[str, Any] = {
        "schema": settings.db_schema,
        "headers": auth_headers(settings),
        "http_client": http,
    }
    # The builders' own GET/HEAD retries (sleeping 1, 2, 4 s) never run: the transport sends.
    if "retry_enabled" in inspect.signature(SyncPostgrestClient.__init__).parameters:
        kwargs["retry_enabled"] = False
    return SyncPostgrestClient(settings.rest_url, **kwargs)


# --- request statistics --------------------------------------------------------------------


@dataclass(frozen=True)
class OperationStats:
    """Calls of one operation, the HTTP requests they sent, and their total wall time."""

    calls: int
    requests: int
    seconds: float


class RequestStats:
    """Requests and time per operation (``find``, ``insert_one``, …), thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}
        self._requests: dict[str, int] = {}
        self._seconds: dict[str, float] = {}
        self._current = threading.local()

    def record_request(self, operation: str) -> None:
        """Count one HTTP request, under the public operation in progress on this thread."""
        name = getattr(self._current, "operation", None) or operation
        with self._lock:
            self._requests[name] = self._requests.get(name, 0) + 1

    @contextmanager
    def timed(self, operation: str) -> Iterator[None]:
        """Time one call of ``operation``; requests sent meanwhile are counted under it."""
        outer = getattr(self._current, "operation", None)
        if outer is None:
            self._current.operation = operation
        start = time.perf_counter()
        try:
            yield
        finally:
            if outer is None:
                elapsed = time.perf_counter() - start
                self._current.operation = None
                with self._lock:
                    self._calls[operation] = self._calls.get(operation, 0) + 1
                    self._seconds[operation] = self._seconds.get(operation, 0.0) + elapsed

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self._requests.values())

    def snapshot(self) -> dict[str, OperationStats]:
        with self._lock:
            names = sorted(set(self._calls) | set(self._requests))
            return {
                name: OperationStats(
                    self._calls.get(name, 0),
                    self._requests.get(name, 0),
                    self._seconds.get(name, 0.0),
                )
                for name in names
            }

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._requests.clear()
            self._seconds.clear()


# --- sending ---------------------------------------------------------------------------------


class Expect(Enum):
    """What a 2xx body must be."""

    ROWS = "rows"  # a JSON array of objects (HEAD: no body)
    OBJECT = "object"  # a JSON object (the adapter's RPC functions)


@dataclass(frozen=True)
class Answer:
    """A decoded 2xx answer: ``data`` (rows or object) and the Content-Range total if asked."""

    status: int
    data: Any
    count: int | None = None


_JSON_SEPARATORS = (",", ":")


class Transport:
    """Sends, decodes, retries and counts every request of one database (thread-safe)."""

    def __init__(
        self,
        settings: SupabaseSettings,
        http_client: httpx.Client | None = None,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        from .errors import ConfigurationError
        from .settings import decode_key_role

        # A public key (publishable, legacy anon, any JWT not for service_role) runs as a
        # browser role: RLS hides every row, so reads would "succeed" with nothing. Refuse it
        # before any request unless the caller opted in (settings.allow_public_key).
        info = decode_key_role(settings.key.get_secret_value())
        public = info.kind == "publishable" or (
            info.kind == "legacy_jwt" and info.role != "service_role"
        )
        if public and not settings.allow_public_key:
            if info.kind == "publishable":
                kind = "a publishable key (sb_publishable_…, role anon)"
            elif info.role == "anon":
                kind = "the legacy anon key (a JWT with role anon)"
            else:
                kind = f"a JWT with role {info.role or 'unset'}, not service_role"
            refusal = ConfigurationError(
                f"SUPABASE_KEY is {kind}, a public key: with it row-level security hides every "
                "row and refuses every write; set SUPABASE_KEY to the secret key (sb_secret_…) or "
                "the legacy service_role key (Dashboard → Project Settings → API Keys), or set "
                "PARLANT_SUPABASE_ALLOW_PUBLIC_KEY=1 (allow_public_key=True) to use it anyway"
            )
            refusal.exit_code = 1  # type: ignore[attr-defined]  # the CLI: a runtime refusal
            raise refusal
        self.settings = settings
        self._owns_http = http_client is None
        self.http = http_client if http_client is not None else build_http_client(settings)
        self._pg = _build_postgrest_client(settings, self.http)
        self._rest_url = settings.rest_url
        self.logger = logger if logger is not None else logging.getLogger("parlant_supabase_sync")
        self.stats = RequestStats()
        self.closed = False

    def close(self) -> None:
        """Stop sending; close the HTTP client if this transport created it (idempotent)."""
        if not self.closed:
            self.closed = True
            if self._owns_http:
                self.http.close()

    def __repr__(self) -> str:
        return f"Transport(url={self.settings.url!r}, schema={self.settings.db_schema!r})"

    # builders: the postgrest client's own, sent by `send` ----------------------------------

    def table(self, table: str) -> Any:
        """A postgrest request builder on ``table`` (``.select``, ``.insert`` …)."""
        return self._pg.table(table)

    def rpc(self, function: str, body: dict[str, Any]) -> Any:
        """A postgrest builder calling ``function`` with the JSON ``body`` (POST)."""
        return self._pg.rpc(function, body)

    # sending -----------------------------------------------------------------------------------

    def send(
        self,
        operation: str,
        builder: Any,
        *,
        table: str | None = None,
        function: str | None = None,
        expect: Expect = Expect.ROWS,
        count: bool = False,
        idempotent: bool = True,
    ) -> Answer:
        """Send ``builder``'s request to ``table`` (or ``function``); the decoded answer.

        Every failure is a :class:`SupabaseSyncError`. ``idempotent=False`` repeats the
        request only when it cannot have reached the server.
        """
        request = (
            builder
            if isinstance(builder, httpx.Request)
            else self.prepare(builder, table=table, function=function)
        )

        def attempt(number: int) -> Answer:
            return self._attempt(operation, request, table, expect, count)

        def may_repeat(error: SupabaseSyncError) -> bool:
            return idempotent or getattr(error, "maybe_applied", True) is False

        def log_retry(number: int, error: SupabaseSyncError, delay: float) -> None:
            self.logger.warning(
                "parlant-supabase-sync: %s on %s failed (%s); retry %d in %.2fs",
                operation,
                table or function or "?",
                type(error).__name__,
                number,
                delay,
            )

        return call_with_retry(
            self.settings.retry, attempt, on_retry=log_retry, may_repeat=may_repeat
        )

    def prepare(
        self, builder: Any, *, table: str | None = None, function: str | None = None
    ) -> httpx.Request:
        """The ``httpx.Request`` for ``builder`` (``send`` takes it too, to build it once)."""
        config = builder.request
        if function is not None:
            url = f"{self._rest_url}/rpc/{quote(function, safe='')}"
        elif table is not None:
            url = f"{self._rest_url}/{quote(validate_table_name(table), safe='')}"
        else:  # pragma: no cover - a programming error
            raise TypeError("send() needs a table or a function")
        headers = httpx.Headers(config.headers)
        content = None
        if config.json is not None and config.http_method not in ("GET", "HEAD"):
            content = json.dumps(
                config.json, ensure_ascii=False, allow_nan=False, separators=_JSON_SEPARATORS
            ).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            return self.http.build_request(
                config.http_method, url, params=config.params, content=content, headers=headers
            )
        except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
            raise wire.from_invalid_url(exc, table=table) from None

    def fits(self, request: httpx.Request) -> bool:
        """Whether ``request``'s target (path and query) is within ``settings.max_url_bytes``."""
        return len(request.url.raw_path) <= self.settings.max_url_bytes

    def _attempt(
        self,
        operation: str,
        request: httpx.Request,
        table: str | None,
        expect: Expect,
        count: bool,
    ) -> Answer:
        if self.closed:
            raise RuntimeError("this database is closed")
        self.stats.record_request(operation)
        try:
            response = self.http.send(request)
        except httpx.TransportError as exc:
            raise wire.from_transport_error(exc) from None
        except httpx.InvalidURL as exc:
            raise wire.from_invalid_url(exc, table=table) from None
        if not response.is_success:
            raise wire.from_answer(response, table=table)
        if expect is Expect.ROWS:
            data: Any = wire.decode_rows(response, table=table)
        else:
            data = wire.decode_json(response, table=table)
            if not isinstance(data, dict):
                raise wire.invalid(response, table, "JSON that is not an object")
        total = wire.content_range_count(response, table=table) if count else None
        return Answer(response.status_code, data, total)

