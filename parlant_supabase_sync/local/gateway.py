"""The HTTP front of the local Supabase stand-in.

One `Gateway` is what a Supabase project's API gateway plus PostgREST's request entry are:

* an HTTP/1.1 keep-alive server (`gateway_http.py`: stdlib `ThreadingHTTPServer`, one daemon
  thread per connection, `TCP_NODELAY`, a request-line limit with Kong's 414);
* routing: only `/rest/v1` and paths below it are PostgREST; anything else gets the gateway's
  404 `{"message":"no Route matched with those values"}` without any key check;
* (`gateway_auth.py`) the Supabase API-key layer of shared/supabase-keys.md §5 (hosted behaviour by default,
  self-hosted Kong's overwrite of any `Bearer sb_…` with `kong_mode=True`);
* PostgREST's JWT layer (postgrest-protocol.md §10.1): HS256 with the project's JWT secret,
  30 s clock skew, the exact PGRST301/302/303 bodies and `WWW-Authenticate` headers;
* a `psycopg_pool.ConnectionPool` of the `authenticator` role, and for each request one call
  of `engine.execute(conn, ApiRequest, EngineConfig)` whose `ApiResponse` goes out untouched.

Keys and JWTs never reach a log line, an exception message or the request log.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg_pool
from typing_extensions import Self

from .engine import ApiRequest, ApiResponse, EngineConfig
from .errors import PgrstError, from_pg_error
from .gateway_auth import (
    _NO_ROUTE,
    _bearer_token,
    _Credentials,
    _gateway_reply,
    _internal_error,
    _JwtRejected,
    _JwtVerifier,
    _KeyLayer,
    _pgrst_reply,
    _Reply,
)
from .gateway_http import (
    DEFAULT_MAX_REQUEST_LINE,
    _Handler,
    _header_text,
    _parse_query,
    _redact_query,
    _Server,
    _split_target,
)
from .keys import ApiKeys
from .requestlog import RequestLog
from .schema_listener import SchemaCache, SchemaCacheError

__all__ = [
    "REST_PREFIX",
    "ApiKeys",
    "Executor",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
]

logger = logging.getLogger(__name__)

REST_PREFIX = "/rest/v1"

#: `engine.execute`'s signature; `Gateway(executor=...)` accepts any function of this shape.
Executor = Callable[["psycopg.Connection[Any]", ApiRequest, EngineConfig], ApiResponse]

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)


class GatewayError(RuntimeError):
    """The gateway could not start (database unreachable, port taken, bad configuration)."""


@dataclass
class GatewayConfig:
    """Everything a `Gateway` needs; `repr` hides the secret and the keys."""

    database_url: str  # DSN of the `authenticator` login role
    jwt_secret: str = field(repr=False)
    api_keys: ApiKeys = field(repr=False)
    engine: EngineConfig = field(default_factory=EngineConfig)
    legacy_keys_enabled: bool = True
    # Self-hosted Kong/Envoy replace any `Bearer sb_…`; hosted passes an unequal one through.
    kong_mode: bool = False
    pool_size: int = 10
    # PostgREST's db-pool-acquisition-timeout: how long a request waits for a connection.
    pool_timeout: float = 10.0
    # Longest request line (with its line break) before 414; None: no limit.
    max_request_line: int | None = DEFAULT_MAX_REQUEST_LINE
    # Body of that 414: "kong" (Supabase's gateway, text/plain) or "nginx" (bare nginx's HTML).
    uri_too_long: str = "kong"
    # Schema cache: reload on `NOTIFY pgrst` (PostgREST's db-channel-enabled). False: the
    # engine reads the catalog on every request instead (no cache at all).
    schema_cache: bool = True

    def __repr__(self) -> str:
        return (
            f"GatewayConfig(database_url={_hide_password(self.database_url)!r}, engine={self.engine!r}, "
            f"legacy_keys_enabled={self.legacy_keys_enabled}, kong_mode={self.kong_mode}, "
            f"pool_size={self.pool_size}, pool_timeout={self.pool_timeout}, "
            f"max_request_line={self.max_request_line}, schema_cache={self.schema_cache})"
        )


def _hide_password(dsn: str) -> str:
    """`postgresql://user:secret@host/db` → `postgresql://user:***@host/db`; key=value DSNs too."""
    dsn = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)


# --------------------------------------------------------------------------------------------
# the gateway


class Gateway:
    """Local Supabase API gateway + PostgREST front; `start()`, then requests to `url + /rest/v1`."""

    def __init__(
        self,
        config: GatewayConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        executor: Executor | None = None,
        requests: RequestLog | None = None,
    ) -> None:
        if len(config.jwt_secret) < 32:
            raise GatewayError("jwt_secret must be at least 32 characters long (PostgREST refuses shorter ones)")
        if config.pool_size < 1:
            raise GatewayError("pool_size must be at least 1")
        if executor is None:
            from .engine import execute

            executor = execute
        self._config = config
        self._engine_config = config.engine
        self._executor = executor
        self._host = host
        self._requested_port = port
        self.requests = requests if requests is not None else RequestLog()
        self._keys = _KeyLayer(config)
        self._jwt = _JwtVerifier(config.jwt_secret)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None
        self._port: int | None = None
        self._checking = threading.Event()
        self._schema_cache: SchemaCache | None = None

    # ---- lifecycle

    @property
    def port(self) -> int:
        if self._port is None:
            raise GatewayError("the gateway is not started; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>` (clients append `/rest/v1`)."""
        return f"http://{self._host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def schema_cache(self) -> SchemaCache | None:
        """The schema cache requests are answered from (None with `schema_cache=False`)."""
        return self._schema_cache

    def set_max_rows(self, n: int | None) -> None:
        """Change PostgREST's `db-max-rows` for the requests that start from now on."""
        if n is not None and n < 0:
            raise ValueError("max rows must be None (unlimited) or a non-negative integer")
        self._engine_config = dataclasses.replace(self._engine_config, max_rows=n)

    def start(self) -> None:
        """Open the connection pool and start serving; returns once connections are accepted."""
        with self._lock:
            if self._server is not None:
                raise GatewayError("this Gateway is already started")
            # One direct attempt first: libpq's reason (refused, no such role, …) beats a pool timeout.
            problem = _probe_database(self._config.database_url)
            if problem is not None:
                raise GatewayError(
                    f"the gateway could not connect to PostgreSQL: {problem}; check that the server "
                    "is running and that database_url names the authenticator login role"
                )
            pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = psycopg_pool.ConnectionPool(
                self._config.database_url,
                min_size=self._config.pool_size,
                max_size=self._config.pool_size,
                timeout=self._config.pool_timeout,
                # Not autocommit: the engine's first statement opens the request's transaction
                # (psycopg's implicit BEGIN) and it commits or rolls back itself.
                kwargs={"application_name": "parlant-supabase-gateway"},
                open=False,
                name="parlant-supabase-gateway",
            )
            try:
                pool.open(wait=True, timeout=max(self._config.pool_timeout, 5.0))
            except psycopg_pool.PoolTimeout:
                pool.close()
                raise GatewayError(
                    f"the gateway could not open {self._config.pool_size} connections to PostgreSQL "
                    f"within {max(self._config.pool_timeout, 5.0):.0f} s: "
                    f"{_probe_database(self._config.database_url) or 'no error reported'}; lower "
                    "pool_size or raise the server's max_connections"
                ) from None
            try:
                self._start_schema_cache()
            except BaseException:
                pool.close()
                raise
            try:
                server = _Server((self._host, self._requested_port), self)
            except OSError as exc:
                pool.close()
                self._stop_schema_cache()
                raise GatewayError(
                    f"the gateway cannot listen on {self._host}:{self._requested_port}: {exc.strerror}; "
                    "choose another port (0 picks a free one)"
                ) from None
            self._pool = pool
            self._server = server
            self._port = server.server_address[1]
            # serve_forever's loop must run before start() returns: the listening socket already
            # queues connections, so a client connecting right after start() is served.
            self._serve_thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.1},
                name=f"gateway-{self._port}", daemon=True,
            )
            self._serve_thread.start()
            logger.info("gateway listening on %s", self.url)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close open connections, join the threads, close the pool. Idempotent."""
        with self._lock:
            server, self._server = self._server, None
            serve_thread, self._serve_thread = self._serve_thread, None
            pool, self._pool = self._pool, None
            if server is None:
                return
            try:
                server.shutdown()
                if serve_thread is not None:
                    serve_thread.join(timeout)
                server.close_connections(timeout)
                server.server_close()
            finally:
                self._stop_schema_cache()
                if pool is not None:
                    pool.close(timeout=timeout)
            logger.info("gateway on port %s stopped", self._port)

    def _start_schema_cache(self) -> None:
        """Load the schema cache and start its listener, as PostgREST does before serving."""
        if not self._config.schema_cache:
            return
        cache = SchemaCache(self._config.database_url, self._engine_config.schemas)
        try:
            cache.start()
        except SchemaCacheError as exc:
            cache.stop()
            raise GatewayError(f"the gateway could not load its schema cache: {exc}") from None
        self._schema_cache = cache
        self._engine_config = dataclasses.replace(self._engine_config, schema_cache=cache)

    def _stop_schema_cache(self) -> None:
        cache, self._schema_cache = self._schema_cache, None
        if cache is not None:
            cache.stop()
            self._engine_config = dataclasses.replace(self._engine_config, schema_cache=None)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"url={self.url}" if self._server is not None else "stopped"
        return f"<Gateway {state}>"

    # ---- one request

    def _serve(self, handler: _Handler, body: bytes) -> None:
        method = handler.command or ""
        raw_path, raw_query = _split_target(handler.path)
        try:
            if raw_path == REST_PREFIX or raw_path.startswith(REST_PREFIX + "/"):
                reply = self._rest(method, raw_path[len(REST_PREFIX):] or "/", raw_query, handler, body)
            else:
                reply = _gateway_reply(404, _NO_ROUTE)
        except Exception as exc:  # a bug in the gateway itself: still answer like PostgREST
            logger.exception("the gateway failed on %s %s", method, raw_path)
            reply = _pgrst_reply(_internal_error(exc))
        self._reply(handler, reply)

    def _reply(self, handler: _Handler, reply: _Reply) -> None:
        """Record the request, then send the reply (so a finished request is always logged)."""
        method = handler.command or ""
        raw_path, raw_query = _split_target(handler.path)
        self.requests.record(method, raw_path, _redact_query(raw_query), reply.status)
        logger.debug("%s %s -> %d", method, raw_path, reply.status)
        handler._send(reply, head_only=method == "HEAD")

    def _rest(self, method: str, path: str, raw_query: str, handler: _Handler, body: bytes) -> _Reply:
        headers: dict[str, str] = {}
        for name, value in handler.headers.items():
            lowered = name.lower()
            if lowered in _HOP_BY_HOP:
                continue
            text = _header_text(value.strip())
            headers[lowered] = f"{headers[lowered]}, {text}" if lowered in headers else text
        query = _parse_query(raw_query)
        apikey = headers.get("apikey") or next((v for k, v in query if k == "apikey"), None)
        # A credential has no meaning to PostgREST (it would be a filter on a column `apikey`).
        query = [(k, v) for k, v in query if k != "apikey"]
        granted = self._keys.authorize(apikey, headers.get("authorization"), headers.get("user-agent"))
        if isinstance(granted, _Reply):
            return granted
        if granted.authorization is None:
            headers.pop("authorization", None)
        else:
            headers["authorization"] = granted.authorization
        anon_role = self._engine_config.anon_role
        try:
            role, claims = self._authenticate(granted, anon_role)
        except _JwtRejected as rejected:
            return _pgrst_reply(rejected.error)
        request = ApiRequest(
            method=method, path=path, query=query, headers=headers, body=body, role=role, claims=claims
        )
        return self._execute(request)

    def _authenticate(self, granted: _Credentials, anon_role: str) -> tuple[str, dict[str, Any]]:
        if granted.minted is not None:
            claims = dict(granted.minted.claims)
        else:
            token = _bearer_token(granted.authorization) if granted.authorization is not None else None
            claims = {} if token is None else self._jwt.claims(token, int(time.time()))
        if "role" in claims:
            raw_role = claims["role"]
            role = raw_role if isinstance(raw_role, str) else json.dumps(raw_role, separators=(",", ":"))
        elif anon_role:
            role = anon_role
        else:
            raise _JwtRejected(
                PgrstError(401, "PGRST302", "Anonymous access is disabled", headers=[("WWW-Authenticate", "Bearer")])
            )
        claims["role"] = role
        return role, claims

    def _execute(self, request: ApiRequest) -> _Reply:
        pool = self._pool
        if pool is None:
            return _pgrst_reply(PgrstError(503, "PGRST000", "Database connection error.", "the gateway is stopping"))
        config = self._engine_config
        try:
            conn = pool.getconn()
        except psycopg_pool.PoolTimeout:
            return _pgrst_reply(self._acquire_failure())
        except psycopg_pool.PoolClosed:
            return _pgrst_reply(PgrstError(503, "PGRST000", "Database connection error.", "the gateway is stopping"))
        discard = False
        try:
            response = self._executor(conn, request, config)
            reply = _Reply(response.status, list(response.headers), bytes(response.body))
        except PgrstError as error:
            reply = _pgrst_reply(error)
        except psycopg.Error as exc:
            if exc.sqlstate is None or conn.broken:
                discard = True
                reply = _pgrst_reply(
                    PgrstError(503, "PGRST001", "Database client error. Retrying the connection.", str(exc) or None)
                )
            else:
                reply = _pgrst_reply(from_pg_error(exc, request.role, config.anon_role))
        except Exception as exc:
            discard = True
            logger.exception("the engine failed on %s %s", request.method, request.path)
            reply = _pgrst_reply(_internal_error(exc))
        finally:
            self._release(pool, conn, discard)
        return reply

    def _release(
        self, pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]], conn: psycopg.Connection[Any], discard: bool
    ) -> None:
        if conn.broken:
            # The server dropped this session (restart, pg_terminate_backend): the idle ones in
            # the pool are probably gone too, so have them tested before requests trip on them.
            self._check_pool_soon(pool)
        elif not discard and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.rollback()
            except psycopg.Error:
                discard = True
        if discard:
            # After an unexpected failure the session may hold anything (a role, GUCs, an open
            # cursor): close it and let the pool open a fresh one instead of guessing.
            conn.close()
        try:
            pool.putconn(conn)
        except psycopg_pool.PoolClosed:
            conn.close()

    def _acquire_failure(self) -> PgrstError:
        # The pool keeps its connection count while it retries failed connects in the
        # background, so its stats cannot tell "all busy" from "database gone": ask libpq.
        problem = _probe_database(self._config.database_url, timeout=2)
        if problem is not None:
            return PgrstError(503, "PGRST000", "Database connection error.", problem)
        return PgrstError(504, "PGRST003", "Timed out acquiring connection from connection pool.")

    def _check_pool_soon(self, pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]]) -> None:
        """After a dropped connection, test the idle ones in the background (one check at a time)."""
        if self._checking.is_set():
            return
        self._checking.set()

        def check() -> None:
            try:
                pool.check()
            except Exception:
                logger.debug("pool check after a lost connection failed", exc_info=True)
            finally:
                self._checking.clear()

        threading.Thread(target=check, name="gateway-pool-check", daemon=True).start()


def _probe_database(dsn: str, timeout: int = 5) -> str | None:
    """None if `dsn` accepts a connection, else libpq's reason (which never quotes a password)."""
    try:
        with psycopg.connect(dsn, connect_timeout=timeout):
            return None
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__


