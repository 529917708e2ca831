"""The transport's prepared requests are byte-identical to what the postgrest builders make.

`Transport.select_request` / `rpc_request` build each request from a template taken once per
table (or function) and shape; these tests compare them with the builder path
(`Transport.prepare` of `table().select()` + `apply_filters` + `apply_order` + `limit`, or of
`rpc()`) for many filters, values and client states. No request is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from parlant_supabase_sync import filters
from parlant_supabase_sync import transport as transport_module
from parlant_supabase_sync._types import Cursor, ObjectId, SortDirection
from parlant_supabase_sync.errors import RequestTooLarge
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.transport import (
    Transport,
    apply_filters,
    apply_order,
    build_http_client,
)

SECRET = "sb_secret_" + "k" * 31
TABLE = "parlant_sessions_events"
EXACT: Any = "exact"

WHERES: list[dict[str, Any]] = [
    {},
    {"id": {"$eq": "plain"}},
    {"id": {"$eq": "with space+plus/slash?&=#%"}},
    {"session_id": {"$eq": "ünïcødé ☃ 日本"}},
    {"customer_id": {"$ne": 'quote"back\\slash,comma(paren):colon'}},
    {"kind": {"$eq": "message"}, "offset": {"$gte": 3}},
    {"$or": [{"id": {"$eq": f"id-{n}"}} for n in range(40)]},
    {"tags": {"$in": ["a", "b,c", "", "null", "x y"]}},
    {"n": {"$nin": [1, 2.5, True, None]}},
    {"$and": [{"a": {"$gt": "x"}}, {"$or": [{"b": {"$lt": 1}}, {"c": {"$eq": None}}]}]},
    {"odd key": {"$eq": "v"}, "data->x": {"$eq": 1}},
    {"id": {"$in": []}},
]
CURSOR = Cursor(creation_utc="2025-01-01T00:00:00+00:00", id=ObjectId("ev,1"))


def _shape(request: httpx.Request) -> tuple[Any, ...]:
    return (
        request.method,
        str(request.url),
        request.headers.raw,
        request.content,
        request.extensions,
    )


@contextmanager
def _transport(http: httpx.Client | None = None, **settings: Any) -> Iterator[Transport]:
    config = SupabaseSettings(url="https://abc.supabase.co", key=SECRET, **settings)
    transport = Transport(config, http)
    try:
        yield transport
    finally:
        transport.close()


@pytest.fixture(params=[True, False], ids=["shortcut", "public-url"])
def transport(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Transport]:
    # Both ways of building the URL (see transport._shortcut_works) must give the same request.
    monkeypatch.setattr(transport_module, "_SHORTCUT", request.param)
    with _transport(max_url_bytes=65536) as transport:
        yield transport


def _builder_request(
    transport: Transport,
    columns: str,
    params: list[tuple[str, str]],
    order: str | None,
    limit: int | None,
    count: bool,
) -> httpx.Request:
    builder = transport.table(TABLE).select(columns, count=EXACT if count else None)
    builder = apply_filters(builder, params)
    if order is not None:
        builder = apply_order(builder, order)
    if limit is not None:
        builder = builder.limit(limit)
    return transport.prepare(builder, table=TABLE)


def _cases() -> Iterator[tuple[str, list[tuple[str, str]], str | None, int | None, bool]]:
    orders = [
        None,
        filters.encode_order(None),
        filters.encode_order([("offset", SortDirection.DESC), ("kind", SortDirection.ASC)]),
    ]
    for where in WHERES:
        params = filters.encode_where(where)
        for order in orders:
            yield "id,creation_utc,data", params, order, 1000, True
            yield "data", params, order, 1, False
        yield "id", params, None, 0, True
        # Two `or` parameters (filter and cursor): the builder groups values by key.
        cursor = filters.encode_cursor(CURSOR, SortDirection.DESC)
        yield "id,creation_utc,data", [*params, cursor], orders[1], 50, False
        yield "*", params, None, None, False


def test_select_requests_are_byte_identical_to_the_builders(transport: Transport) -> None:
    for columns, params, order, limit, count in _cases():
        fast = transport.select_request(
            TABLE, columns, params, order=order, limit=limit, count=count
        )
        assert fast is not None
        expected = _builder_request(transport, columns, params, order, limit, count)
        assert _shape(fast) == _shape(expected), (columns, params, order, limit, count)


def test_rpc_requests_are_byte_identical_to_the_builders(transport: Transport) -> None:
    bodies: list[dict[str, Any]] = [
        {},
        {"p_request_id": "abc", "p_table": TABLE, "p_operation": "insert", "p_args": {}},
        {"p_args": {"document": {"id": "ü☃", "n": 1.5, "b": True, "z": None, "l": [1, "x"]}}},
        {"p_where": [{"p": {"col": "id"}, "op": "eq", "v": 'a"b\\c'}], "p_limit": 10},
    ]
    for function in ("parlant_write", "parlant_find", "parlant_schema_report"):
        for body in bodies:
            fast = transport.rpc_request(function, body)
            expected = transport.prepare(transport.rpc(function, body), function=function)
            assert _shape(fast) == _shape(expected), (function, body)


def test_a_target_over_max_url_bytes_is_refused_before_it_is_built() -> None:
    with _transport(max_url_bytes=200) as transport:
        short = [("id", "eq.x")]
        request = transport.select_request(TABLE, "data", short, limit=1)
        assert request is not None and transport.fits(request)
        long = [("id", "in.(" + ",".join(f"id-{n}" for n in range(100)) + ")")]
        assert transport.select_request(TABLE, "data", long, limit=1) is None
        unbounded = transport.select_request(TABLE, "data", long, limit=1, bounded=False)
        assert not transport.fits(unbounded)
        huge = [("id", "in.(" + ",".join(f"id-{n}" for n in range(9000)) + ")")]
        with pytest.raises(RequestTooLarge):  # over httpx's 64 KiB URL limit
            transport.select_request(TABLE, "data", huge, limit=1, bounded=False)


def test_client_changes_after_the_first_request_reach_every_later_request() -> None:
    http = build_http_client(SupabaseSettings(url="https://abc.supabase.co", key=SECRET))
    with _transport(http) as transport:
        params = filters.encode_where({"id": {"$eq": "x"}})
        transport.select_request(TABLE, "data", params, limit=1)
        http.headers["X-Extra"] = "1"
        http.timeout = httpx.Timeout(3.0)
        http.cookies.set("session", "c", domain="abc.supabase.co")
        for cookie in ("session=c", None):
            fast = transport.select_request(TABLE, "data", params, limit=1)
            assert fast is not None
            expected = _builder_request(transport, "data", params, None, 1, False)
            assert _shape(fast) == _shape(expected)
            assert fast.headers["X-Extra"] == "1" and fast.headers.get("Cookie") == cookie
            http.cookies.clear()
        rpc = transport.rpc_request("parlant_write", {"a": 1})
        assert rpc.extensions["timeout"]["read"] == 3.0
    http.close()
