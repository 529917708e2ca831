"""The PostgREST engine of the local stand-in: everything PostgREST v14 does after auth.

`execute()` turns one authenticated `ApiRequest` into one transaction on a connection of the
`authenticator` role and returns the `ApiResponse` PostgREST would send. The behaviour
reference is postgrest-protocol.md; where the notes cite PostgREST sources, they were checked
against tag v14.5 (read, not copied).

The work is split in stages, one module each: `engine_request` (types, Prefer, range, media
type, body), `engine_context` (the shared context and response helpers), `engine_read`,
`engine_write` and `engine_rpc`; `_Request` here combines them and routes.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import pq

from .engine_read import ReadStage
from .engine_request import SINGULAR_MEDIA, ApiRequest, ApiResponse, EngineConfig, SchemaSource
from .engine_rpc import RpcStage
from .engine_write import WriteStage
from .errors import PgrstError, from_pg_error
from .sqlbuild import Source, qident

__all__ = ["SINGULAR_MEDIA", "ApiRequest", "ApiResponse", "EngineConfig", "SchemaSource", "execute"]


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


class _Request(ReadStage, WriteStage, RpcStage):
    def run(self) -> ApiResponse:
        kind, name = self._route()
        if kind == "root":
            return self._root()
        if self.method == "OPTIONS":
            return self._options(kind, name)
        self._begin(kind)
        if kind == "rpc":
            return self._rpc(name)
        return self._table(name)

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
