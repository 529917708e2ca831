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
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, overload
from urllib.parse import quote, urlencode

import httpx
from postgrest import SyncPostgrestClient
from postgrest.types import CountMethod
from postgrest.utils import sanitize_param

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
    "apply_filters",
    "apply_order",
    "auth_headers",
    "build_http_client",
    "pool_size",
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


def pool_size(http: httpx.Client) -> int | None:
    """How many connections ``http`` keeps at most (None: unlimited or not an httpcore pool)."""
    pool = getattr(getattr(http, "_transport", None), "_pool", None)
    size = getattr(pool, "_max_connections", None)
    return size if isinstance(size, int) else None


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


def apply_filters(builder: Any, params: Sequence[tuple[str, str]]) -> Any:
    """Put ``filters.encode_where`` parameters on a postgrest builder."""
    for key, value in params:
        if key == "or":
            builder = builder.or_(value[1:-1])
        else:
            operator, _, criteria = value.partition(".")
            builder = builder.filter(key, operator, criteria)
    return builder


def apply_order(builder: Any, order: str) -> Any:
    """Put a ``filters.encode_order`` value on a postgrest builder."""
    # postgrest-py's order() appends "<column>.<asc|desc>" verbatim; our order string always
    # ends with the id tiebreak, so it goes in as one "column" plus the last direction.
    head, _, direction = order.rpartition(".")
    return builder.order(head, desc=direction == "desc")


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

    def timed(self, operation: str) -> _Timed:
        """Time one call of ``operation``; requests sent meanwhile are counted under it."""
        return _Timed(self, operation)

    def _finish(self, operation: str, elapsed: float) -> None:
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


class _Timed:
    """``with stats.timed(operation):`` (a class, not a generator: it runs on every call)."""

    __slots__ = ("_operation", "_outer", "_start", "_stats")

    def __init__(self, stats: RequestStats, operation: str) -> None:
        self._stats = stats
        self._operation = operation

    def __enter__(self) -> None:
        current = self._stats._current
        self._outer = getattr(current, "operation", None)
        if self._outer is None:
            current.operation = self._operation
        self._start = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        if self._outer is None:
            self._stats._finish(self._operation, time.perf_counter() - self._start)


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
# Typed Any: postgrest's StrEnums are unknown to mypy when it checks for Python 3.10.
_EXACT: Any = CountMethod.exact
# Characters postgrest's sanitize_param quotes a filter key for; select lists with whitespace
# (which the builder strips) take the builder path.
_RESERVED_KEY = re.compile(r'[,:()"\\]')
_WHITESPACE = re.compile(r"\s")


@dataclass(frozen=True)
class _Template:
    """What every request of one shape shares: method, URL without query, headers (with Host,
    without Content-Length), extensions; taken once from a request the postgrest builder made."""

    method: str
    url: httpx.URL
    text: str
    headers: httpx.Headers
    extensions: dict[str, Any]
    path_bytes: int


def _shortcut_works() -> bool:
    """Whether a URL can take a query by replacing the query of its parsed form (what
    ``httpx.URL`` parsing gives for already-encoded text, without parsing it again)."""
    try:
        base = httpx.URL("http://h:1/p%20q")
        url = httpx.URL.__new__(httpx.URL)
        url._uri_reference = base._uri_reference._replace(query="a=b%2C+%C3%BC&c=d")
        expected = httpx.URL("http://h:1/p%20q?a=b%2C+%C3%BC&c=d")
        return url == expected and url.raw_path == expected.raw_path and str(url) == str(expected)
    except Exception:  # noqa: BLE001 - any other httpx: take the public path
        return False


# Checked once: with an httpx whose URL internals differ, requests are built the public way.
_SHORTCUT = _shortcut_works()
_MAX_URL_LENGTH = 65536  # httpx refuses longer URLs (InvalidURL): those take the public path


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
        self._templates: dict[tuple[str, str, bool], _Template] = {}
        self._templates_for: tuple[Any, ...] = ()
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

    # prepared requests: the builders' requests, built once per shape ---------------------------

    @overload
    def select_request(
        self,
        table: str,
        columns: str,
        params: Sequence[tuple[str, str]],
        *,
        order: str | None = ...,
        limit: int | None = ...,
        count: bool = ...,
        bounded: Literal[False],
    ) -> httpx.Request: ...

    @overload
    def select_request(
        self,
        table: str,
        columns: str,
        params: Sequence[tuple[str, str]],
        *,
        order: str | None = ...,
        limit: int | None = ...,
        count: bool = ...,
        bounded: bool = ...,
    ) -> httpx.Request | None: ...

    def select_request(
        self,
        table: str,
        columns: str,
        params: Sequence[tuple[str, str]],
        *,
        order: str | None = None,
        limit: int | None = None,
        count: bool = False,
        bounded: bool = True,
    ) -> httpx.Request | None:
        """The GET ``table.select(columns[, count=exact])`` + filters ``params`` + ``order`` +
        ``limit`` would send, byte for byte. With ``bounded``, None when its target (path and
        query) would be longer than ``settings.max_url_bytes`` (checked before building it).

        The method, URL, headers and extensions come from a request the builder made once for
        this table and count flag; only the query is encoded per call (as the builder's
        ``QueryParams`` does: values grouped by key in first-seen order, form-encoded).
        """
        pairs: dict[str, list[str]] = {"select": [columns]}
        for key, value in params:
            if _RESERVED_KEY.search(key):
                key = sanitize_param(key)
            pairs.setdefault(key, []).append(value)
        if order is not None:
            pairs["order"] = [order]
        if limit is not None:
            pairs.setdefault("limit", []).append(str(limit))
        query = urlencode([(key, value) for key, values in pairs.items() for value in values])
        template = self._template("GET", table, count, columns)
        if template is None:  # the client has cookies or default params: the builder's way
            builder = self.table(table).select(columns, count=_EXACT if count else None)
            builder = apply_filters(builder, params)
            if order is not None:
                builder = apply_order(builder, order)
            if limit is not None:
                builder = builder.limit(limit)
            request = self.prepare(builder, table=table)
            return request if not bounded or self.fits(request) else None
        if bounded and template.path_bytes + 1 + len(query) > self.settings.max_url_bytes:
            return None
        return self._from_template(template, query, None, table)

    def rpc_request(
        self, function: str, body: Mapping[str, Any], *, table: str | None = None
    ) -> httpx.Request:
        """The POST ``rpc(function, body)`` would send, byte for byte (see ``select_request``)."""
        template = self._template("POST", function, False, "")
        if template is None:
            return self.prepare(self.rpc(function, dict(body)), function=function)
        content = json.dumps(
            body, ensure_ascii=False, allow_nan=False, separators=_JSON_SEPARATORS
        ).encode("utf-8")
        return self._from_template(template, None, content, table)

    def _template(self, method: str, name: str, count: bool, columns: str) -> _Template | None:
        http = self.http
        if http.cookies or http.params or _WHITESPACE.search(columns):
            return None
        state = (http.headers.raw, http.timeout)
        if state != self._templates_for:
            self._templates = {}
            self._templates_for = state
        key = (method, name, count)
        template = self._templates.get(key)
        if template is None:
            if method == "GET":
                builder = self._pg.table(name).select("*", count=_EXACT if count else None)
                sample = self.prepare(builder, table=name)
            else:
                sample = self.prepare(self.rpc(name, {}), function=name)
            headers = httpx.Headers(
                [(k, v) for k, v in sample.headers.raw if k.lower() != b"content-length"]
            )
            url = sample.url.copy_with(query=None)
            template = _Template(
                sample.method, url, str(url), headers, dict(sample.extensions), len(url.raw_path)
            )
            self._templates[key] = template
        return template

    @staticmethod
    def _from_template(
        template: _Template, query: str | None, content: bytes | None, table: str | None
    ) -> httpx.Request:
        """``httpx.Request(method, url, headers=…, content=…)`` for the template, as
        ``Client.build_request`` makes it. The query is already form-encoded (urlencode), so
        parsing the URL again could not change it, and the headers already hold Host."""
        size = len(template.text) + (0 if query is None else 1 + len(query))
        if _SHORTCUT and size <= _MAX_URL_LENGTH:
            if query is None:
                url = template.url
            else:
                url = httpx.URL.__new__(httpx.URL)
                url._uri_reference = template.url._uri_reference._replace(query=query)
            headers = template.headers
            if content is not None:
                headers = httpx.Headers(headers)
                headers["Content-Length"] = str(len(content))
            request = httpx.Request(
                template.method,
                url,
                headers=headers,
                stream=httpx.ByteStream(content or b""),
                extensions=template.extensions,
            )
            request.read()
            return request
        text = template.text if query is None else f"{template.text}?{query}"
        try:
            return httpx.Request(
                template.method,
                text,
                headers=template.headers,
                content=content,
                extensions=template.extensions,
            )
        except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
            raise wire.from_invalid_url(exc, table=table) from None

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
