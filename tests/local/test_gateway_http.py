"""Gateway HTTP behaviour: keep-alive, framing, routing, request parsing, pass-through of the
engine's responses, failure handling around the connection pool, lifecycle and the request log.

The executor is a plain function written here (echo, fail, block …) so each test controls what
"PostgREST" answers; the sockets and the PostgreSQL pool are real.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from parlant_supabase_sync.local.bootstrap import AUTHENTICATOR
from parlant_supabase_sync.local.engine import ApiRequest, ApiResponse, EngineConfig
from parlant_supabase_sync.local.errors import PgrstError
from parlant_supabase_sync.local.gateway import (
    ApiKeys,
    Gateway,
    GatewayConfig,
    GatewayError,
)
from parlant_supabase_sync.local.requestlog import LoggedRequest, RequestLog

Executor = Callable[[psycopg.Connection[Any], ApiRequest, EngineConfig], ApiResponse]
NO_ROUTE = {"message": "no Route matched with those values"}


def echo_executor(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
    payload = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": dict(request.headers),
        "body": request.body.decode("utf-8", "replace"),
        "body_length": len(request.body),
        "role": request.role,
        "max_rows": config.max_rows,
    }
    return ApiResponse(200, [("Content-Type", "application/json; charset=utf-8")], json.dumps(payload).encode())


@pytest.fixture(scope="module")
def api_keys(local_supabase: Any) -> ApiKeys:
    return ApiKeys(anon=local_supabase.anon_key, service_role=local_supabase.service_role_key,
                   publishable=local_supabase.publishable_key, secret=local_supabase.secret_key)


@pytest.fixture(scope="module")
def make_config(local_supabase: Any, api_keys: ApiKeys) -> Callable[..., GatewayConfig]:
    def make(**overrides: Any) -> GatewayConfig:
        settings: dict[str, Any] = {
            "database_url": local_supabase.postgres.dsn(AUTHENTICATOR),
            "jwt_secret": local_supabase.jwt_secret,
            "api_keys": api_keys,
            "pool_size": 2,
        }
        settings.update(overrides)
        return GatewayConfig(**settings)

    return make


@pytest.fixture
def make_gateway(make_config: Callable[..., GatewayConfig]) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def make(executor: Executor = echo_executor, **overrides: Any) -> Gateway:
        gateway = Gateway(make_config(**overrides), executor=executor)
        gateway.start()
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.stop()


@pytest.fixture(scope="module")
def shared_gateway(make_config: Callable[..., GatewayConfig]) -> Iterator[Gateway]:
    with Gateway(make_config(), executor=echo_executor) as gateway:
        yield gateway


@pytest.fixture
def gateway(shared_gateway: Gateway) -> Gateway:
    shared_gateway.requests.clear()
    return shared_gateway


@pytest.fixture
def key(api_keys: ApiKeys) -> str:
    return api_keys.service_role


# --- raw HTTP helpers -------------------------------------------------------------------------


class RawResponse:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    """A socket that sends bytes as written and parses responses strictly by Content-Length."""

    def __init__(self, gateway: Gateway) -> None:
        self.sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, *, head: bool = False) -> RawResponse:
        status_line = self.file.readline()
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        status = int(status_line.split()[1])
        headers: list[tuple[str, str]] = []
        while True:
            line = self.file.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        length = [v for k, v in headers if k.lower() == "content-length"]
        body = b""
        if length and not head:
            body = self.file.read(int(length[0]))
        return RawResponse(status, headers, body)

    def request(self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"") -> RawResponse:
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return self.read(head=method == "HEAD")

    def at_eof(self) -> bool:
        return self.file.read(1) == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def raw(gateway: Gateway) -> Iterator[RawConnection]:
    conn = RawConnection(gateway)
    yield conn
    conn.close()


# --- keep-alive and framing -------------------------------------------------------------------


class TestKeepAlive:
    def test_many_requests_share_one_connection(self, gateway: Gateway, key: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        conn.connect()
        first_socket = conn.sock
        for i in range(200):
            conn.request("GET", f"/rest/v1/docs?i={i}", headers={"apikey": key})
            resp = conn.getresponse()
            assert json.loads(resp.read())["query"] == [["i", str(i)]]
            assert conn.sock is first_socket  # http.client reconnects silently if the server closed
        conn.close()
        assert gateway.requests.count(path_contains="/rest/v1/docs") == 200

    def test_httpx_client_reuses_its_connection(self, gateway: Gateway, key: str) -> None:
        peers = set()
        with httpx.Client(headers={"apikey": key}) as client:
            for _ in range(50):
                resp = client.get(gateway.url + "/rest/v1/docs", extensions={})
                assert resp.status_code == 200
                stream = resp.extensions["network_stream"]
                peers.add(stream.get_extra_info("client_addr"))
        assert len(peers) == 1

    def test_connection_close_is_honoured(self, raw: RawConnection, key: str) -> None:
        resp = raw.request("GET", "/rest/v1/docs", {"apikey": key, "Connection": "close"})
        assert resp.status == 200
        assert resp.header("Connection") == "close"
        assert raw.at_eof()

    def test_http_1_0_closes_unless_keep_alive_is_asked(self, gateway: Gateway, key: str) -> None:
        conn = RawConnection(gateway)
        conn.send(f"GET /rest/v1/docs HTTP/1.0\r\napikey: {key}\r\n\r\n".encode())
        assert conn.read().status == 200
        assert conn.at_eof()
        conn.close()
        conn = RawConnection(gateway)
        for _ in range(2):
            conn.send(f"GET /rest/v1/docs HTTP/1.0\r\nConnection: keep-alive\r\napikey: {key}\r\n\r\n".encode())
            resp = conn.read()
            assert resp.status == 200 and resp.header("Connection") == "keep-alive"
        conn.close()

    def test_pipelined_requests_are_answered_in_order(self, raw: RawConnection, key: str) -> None:
        raw.send(b"".join(
            f"GET /rest/v1/docs?n={n} HTTP/1.1\r\nHost: x\r\napikey: {key}\r\n\r\n".encode() for n in range(5)
        ))
        for n in range(5):
            assert raw.read().json()["query"] == [["n", str(n)]]


class TestFraming:
    def test_every_kind_of_response_has_a_correct_content_length(self, raw: RawConnection, key: str) -> None:
        for target, headers, status in [
            ("/rest/v1/docs", {"apikey": key}, 200),  # from the executor
            ("/rest/v1/docs", {}, 401),  # from the key layer
            ("/rest/v1/docs", {"apikey": key, "Authorization": "Bearer x.y"}, 401),  # from the JWT layer
            ("/nowhere", {}, 404),  # from the router
        ]:
            resp = raw.request("GET", target, headers)
            assert resp.status == status
            assert resp.header("Content-Length") == str(len(resp.body))
            assert resp.body and json.loads(resp.body)
        assert raw.request("GET", "/rest/v1/docs", {"apikey": key}).status == 200  # still in sync

    def test_head_sends_the_length_but_no_body(self, raw: RawConnection, key: str) -> None:
        get = raw.request("GET", "/rest/v1/docs", {"apikey": key, "X-Same": "1"})
        head = raw.request("HEAD", "/rest/v1/docs", {"apikey": key, "X-Same": "1"})
        assert head.status == 200 and head.body == b""
        assert int(head.header("Content-Length") or -1) == len(get.body) - len('"GET"') + len('"HEAD"')
        assert raw.request("GET", "/rest/v1/docs", {"apikey": key}).status == 200

    def test_no_body_statuses_carry_no_content_length(self, make_gateway: Callable[..., Gateway], key: str) -> None:
        def no_content(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
            return ApiResponse(204, [("Content-Range", "*/*"), ("Content-Length", "99")], b"ignored")

        conn = RawConnection(make_gateway(no_content))
        resp = conn.request("DELETE", "/rest/v1/docs?id=eq.1", {"apikey": key})
        assert resp.status == 204 and resp.header("Content-Length") is None
        assert resp.header("Content-Range") == "*/*"
        assert conn.request("DELETE", "/rest/v1/docs?id=eq.2", {"apikey": key}).status == 204  # framing intact
        conn.close()


class TestRequestParsing:
    @pytest.mark.parametrize("size", [70 * 1024, 300 * 1024])
    def test_urls_far_beyond_64_kib_without_a_request_line_limit(
        self, make_gateway: Callable[..., Gateway], key: str, size: int
    ) -> None:
        gateway = make_gateway(max_request_line=None)
        values = ",".join(f"v{i:06d}" for i in range(size // 8))
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        conn.request("GET", f"/rest/v1/docs?id=in.({values})", headers={"apikey": key})
        resp = conn.getresponse()
        assert resp.status == 200
        assert json.loads(resp.read())["query"] == [["id", f"in.({values})"]]
        conn.close()

    def test_body_by_content_length(self, gateway: Gateway, key: str) -> None:
        body = json.dumps([{"id": i, "data": "x" * 100} for i in range(2000)]).encode()
        with httpx.Client() as client:
            resp = client.post(gateway.url + "/rest/v1/docs", content=body,
                               headers={"apikey": key, "Content-Type": "application/json"})
        assert resp.json()["body_length"] == len(body)
        assert resp.json()["body"] == body.decode()

    def test_chunked_body_with_extensions_and_trailer(self, raw: RawConnection, key: str) -> None:
        raw.send(
            f"POST /rest/v1/docs HTTP/1.1\r\nHost: x\r\napikey: {key}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + b"5;name=value\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        echo = raw.read().json()
        assert echo["body"] == "hello world!"
        assert "transfer-encoding" not in echo["headers"]
        assert raw.request("GET", "/rest/v1/docs", {"apikey": key}).status == 200

    def test_expect_100_continue(self, raw: RawConnection, key: str) -> None:
        raw.send(f"POST /rest/v1/docs HTTP/1.1\r\nHost: x\r\napikey: {key}\r\nContent-Length: 2\r\n"
                 "Expect: 100-continue\r\n\r\n".encode())
        assert raw.file.readline().startswith(b"HTTP/1.1 100")
        assert raw.file.readline() == b"\r\n"
        raw.send(b"{}")
        assert raw.read().json()["body"] == "{}"

    @pytest.mark.parametrize(("framing", "status"), [
        ("Content-Length: abc", 400),
        ("Content-Length: -1", 400),
        ("Content-Length: 1\r\nContent-Length: 2", 400),
        ("Transfer-Encoding: gzip", 501),
    ])
    def test_bad_framing_is_rejected_closes_and_is_logged(
        self, raw: RawConnection, gateway: Gateway, key: str, framing: str, status: int
    ) -> None:
        raw.send(f"POST /rest/v1/docs?x=1 HTTP/1.1\r\nHost: x\r\napikey: {key}\r\n{framing}\r\n\r\n".encode())
        resp = raw.read()
        assert resp.status == status and resp.header("Connection") == "close"
        assert "message" in resp.json()
        assert gateway.requests.entries() == [LoggedRequest("POST", "/rest/v1/docs", "x=1", status)]

    def test_malformed_request_line_never_echoes_it(self, raw: RawConnection, key: str) -> None:
        raw.send(f"GET /rest/v1/docs?apikey={key} HTTP/1.1 extra\r\n\r\n".encode())
        resp = raw.read()
        assert resp.status == 400
        assert key.encode() not in resp.body and key[:12].encode() not in resp.body
        assert resp.json() == {"message": "Bad Request"}

    def test_query_is_decoded_like_postgrest(self, raw: RawConnection, key: str) -> None:
        resp = raw.request("GET", "/rest/v1/docs?a=1+2&b=%2B3&flag&c=&d=x%2Cy%22z&a=5&&e=%E2%82%AC",
                           {"apikey": key})
        assert resp.json()["query"] == [["a", "1 2"], ["b", "+3"], ["c", ""], ["d", 'x,y"z'], ["a", "5"], ["e", "€"]]

    def test_headers_arrive_lower_cased_without_hop_by_hop_ones(self, raw: RawConnection, key: str) -> None:
        resp = raw.request("GET", "/rest/v1/docs", {
            "apikey": key, "Prefer": "count=exact", "X-Multi": "a", "x-multi": "b",
            "Keep-Alive": "timeout=5", "Accept-Profile": "public",
        })
        headers = resp.json()["headers"]
        assert headers["prefer"] == "count=exact"
        assert headers["x-multi"] == "a, b"
        assert headers["accept-profile"] == "public"
        assert headers["apikey"] == key
        assert "keep-alive" not in headers
        assert all(name == name.lower() for name in headers)


class TestRouting:
    @pytest.mark.parametrize(("target", "path"), [
        ("/rest/v1", "/"),
        ("/rest/v1/", "/"),
        ("/rest/v1?select=a", "/"),
        ("/rest/v1/docs", "/docs"),
        ("/rest/v1/rpc/parlant_merge_document", "/rpc/parlant_merge_document"),
        ("/rest/v1/Order%20Items", "/Order%20Items"),  # raw, as PostgREST's rawPathInfo
        ("/rest/v1/a/b/c", "/a/b/c"),
    ])
    def test_rest_prefix_is_stripped(self, raw: RawConnection, key: str, target: str, path: str) -> None:
        assert raw.request("GET", target, {"apikey": key}).json()["path"] == path

    @pytest.mark.parametrize("target", [
        "/", "/rest", "/rest/v10/docs", "/REST/v1/docs", "/rest/v2/docs", "/auth/v1/token", "/storage/v1/object",
    ])
    def test_other_paths_are_404_without_a_key(self, raw: RawConnection, target: str) -> None:
        resp = raw.request("POST", target, body=b"{}")
        assert resp.status == 404 and resp.json() == NO_ROUTE
        assert resp.header("Content-Type") == "application/json; charset=utf-8"

    def test_absolute_form_targets_are_routed_by_their_path(self, raw: RawConnection, key: str) -> None:
        resp = raw.request("GET", "http://127.0.0.1/rest/v1/docs?x=1", {"apikey": key})
        assert resp.json()["path"] == "/docs" and resp.json()["query"] == [["x", "1"]]

    def test_any_method_reaches_the_engine(self, raw: RawConnection, key: str) -> None:
        for method in ("OPTIONS", "PUT", "PATCH", "TRACE", "FOOBAR"):
            assert raw.request(method, "/rest/v1/docs", {"apikey": key}).json()["method"] == method


# --- what the executor returns, and when it fails ---------------------------------------------


class TestPassThrough:
    def test_status_headers_and_body_arrive_untouched(self, make_gateway: Callable[..., Gateway], key: str) -> None:
        body = '[{"id":1,"title":"ü"}]'.encode()
        headers = [
            ("Content-Type", "application/vnd.pgrst.object+json; charset=utf-8"),
            ("Content-Range", "0-0/17"),
            ("Preference-Applied", "count=exact"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Content-Length", "1"),  # wrong on purpose: the gateway frames the body itself
            ("X-Injected", "a\r\nEvil: 1"),  # never split into two headers
        ]

        def partial(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
            return ApiResponse(206, headers, body)

        conn = RawConnection(make_gateway(partial))
        resp = conn.request("GET", "/rest/v1/docs", {"apikey": key})
        assert resp.status == 206 and resp.body == body
        assert resp.header("Content-Length") == str(len(body))
        assert resp.header("Content-Range") == "0-0/17"
        assert resp.header("Preference-Applied") == "count=exact"
        assert [v for k, v in resp.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
        assert resp.header("Evil") is None and resp.header("X-Injected") is None
        assert resp.header("Server") == "postgrest/14-local"
        conn.close()

    def test_an_executor_server_header_is_not_doubled(self, make_gateway: Callable[..., Gateway], key: str) -> None:
        def custom(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
            return ApiResponse(299, [("Server", "postgrest/14.5")], b"")

        conn = RawConnection(make_gateway(custom))
        resp = conn.request("GET", "/rest/v1/docs", {"apikey": key})
        assert resp.status == 299 and resp.header("Server") == "postgrest/14.5"
        assert resp.header("Content-Length") == "0"
        conn.close()

    def test_set_max_rows_reaches_the_engine_config(self, make_gateway: Callable[..., Gateway], key: str) -> None:
        gateway = make_gateway(engine=EngineConfig(max_rows=1000))
        with httpx.Client(headers={"apikey": key}) as client:
            def max_rows() -> Any:
                return client.get(gateway.url + "/rest/v1/docs").json()["max_rows"]

            assert max_rows() == 1000
            gateway.set_max_rows(5)
            assert max_rows() == 5
            gateway.set_max_rows(None)
            assert max_rows() is None
        with pytest.raises(ValueError):
            gateway.set_max_rows(-1)


def _transaction_state(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = conn.execute(
        "select current_user, current_setting('test.marker', true), pg_backend_pid()"
    ).fetchone()
    assert row is not None
    state = {"user": row[0], "marker": row[1] or None, "pid": row[2]}
    conn.rollback()
    return state


class TestExecutorFailures:
    def test_unexpected_exception_is_a_pgrst_500_without_traceback(
        self, make_gateway: Callable[..., Gateway], key: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        seen: list[dict[str, Any]] = []

        def flaky(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if request.path == "/boom":
                conn.execute("set role anon")  # session state a fresh connection must not inherit
                conn.execute("select set_config('test.marker', 'dirty', false)")
                raise KeyError("internal detail")
            seen.append(_transaction_state(conn))
            return ApiResponse(200, [], b"ok")

        gateway = make_gateway(flaky, pool_size=1)
        with httpx.Client(headers={"apikey": key}) as client:
            resp = client.get(gateway.url + "/rest/v1/boom")
            assert resp.status_code == 500
            assert resp.json() == {
                "code": "PGRSTX00", "details": "KeyError", "hint": None,
                "message": "Internal error in the local Supabase stand-in; its log has the traceback.",
            }
            assert "Traceback" not in resp.text and "internal detail" not in resp.text
            assert resp.headers["proxy-status"] == "PostgREST; error=PGRSTX00"
            for _ in range(3):
                assert client.get(gateway.url + "/rest/v1/ok").status_code == 200
        assert all(s["user"] == AUTHENTICATOR and s["marker"] is None for s in seen)
        assert any("Traceback" in (r.exc_text or "") for r in caplog.records if r.name.endswith("gateway"))

    def test_open_transaction_left_by_the_executor_is_rolled_back(
        self, make_gateway: Callable[..., Gateway], key: str
    ) -> None:
        seen: list[dict[str, Any]] = []

        def sloppy(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            seen.append(_transaction_state(conn))
            conn.execute("select set_config('test.marker', 'left-open', true)")  # transaction stays open
            return ApiResponse(200, [], b"ok")

        gateway = make_gateway(sloppy, pool_size=1)
        with httpx.Client(headers={"apikey": key}) as client:
            for _ in range(3):
                assert client.get(gateway.url + "/rest/v1/x").status_code == 200
        assert [s["marker"] for s in seen] == [None, None, None]
        assert len({s["pid"] for s in seen}) == 1  # the same connection, reused after the rollback

    def test_pgrst_error_raised_by_the_executor_is_rendered(
        self, make_gateway: Callable[..., Gateway], key: str
    ) -> None:
        def refusing(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
            raise PgrstError(404, "PGRST205", "Could not find the table 'public.x' in the schema cache")

        gateway = make_gateway(refusing)
        resp = httpx.get(gateway.url + "/rest/v1/x", headers={"apikey": key})
        assert resp.status_code == 404 and resp.json()["code"] == "PGRST205"

    def test_escaped_sql_error_is_mapped_and_the_connection_reused(
        self, make_gateway: Callable[..., Gateway], key: str
    ) -> None:
        pids: list[int] = []

        def dividing(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
            pids.append(_transaction_state(conn)["pid"])
            conn.execute("select 1/0")
            raise AssertionError("unreachable")

        gateway = make_gateway(dividing, pool_size=1)
        with httpx.Client(headers={"apikey": key}) as client:
            for _ in range(2):
                resp = client.get(gateway.url + "/rest/v1/x")
                assert resp.status_code == 400 and resp.json()["code"] == "22012"
        assert len(set(pids)) == 1

    def test_pool_exhaustion_is_pgrst003_after_the_timeout(
        self, make_gateway: Callable[..., Gateway], key: str
    ) -> None:
        entered, release = threading.Event(), threading.Event()

        def blocking(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
            if request.path == "/slow":
                entered.set()
                release.wait(10)
            return ApiResponse(200, [], b"done")

        gateway = make_gateway(blocking, pool_size=1, pool_timeout=0.2)
        results: list[int] = []
        slow = threading.Thread(
            target=lambda: results.append(httpx.get(gateway.url + "/rest/v1/slow", headers={"apikey": key}).status_code)
        )
        slow.start()
        try:
            assert entered.wait(10)
            resp = httpx.get(gateway.url + "/rest/v1/fast", headers={"apikey": key})
            assert resp.status_code == 504
            assert resp.json() == {"code": "PGRST003", "details": None, "hint": None,
                                   "message": "Timed out acquiring connection from connection pool."}
        finally:
            release.set()
            slow.join(10)
        assert results == [200]
        assert httpx.get(gateway.url + "/rest/v1/fast", headers={"apikey": key}).status_code == 200

    def test_lost_database_connection_is_503_and_the_pool_recovers(
        self, make_gateway: Callable[..., Gateway], key: str, local_supabase: Any
    ) -> None:
        def pid(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
            return ApiResponse(200, [], str(_transaction_state(conn)["pid"]).encode())

        gateway = make_gateway(pid, pool_size=1)
        with httpx.Client(headers={"apikey": key}) as client:
            backend = int(client.get(gateway.url + "/rest/v1/x").text)
            local_supabase.execute_sql(f"select pg_terminate_backend({backend})")
            resp = client.get(gateway.url + "/rest/v1/x")
            assert resp.status_code == 503
            assert resp.json()["code"] == "PGRST001"
            assert resp.json()["message"] == "Database client error. Retrying the connection."
            assert "retry-after" in resp.headers
            recovered = client.get(gateway.url + "/rest/v1/x")
            assert recovered.status_code == 200 and int(recovered.text) != backend

    def test_database_refusing_connections_is_pgrst000_with_libpq_reason(
        self, make_gateway: Callable[..., Gateway], key: str, local_supabase: Any
    ) -> None:
        role = "gateway_test_login"
        local_supabase.execute_sql(f"""
            do $$ begin
              if not exists (select from pg_roles where rolname = '{role}') then
                create role {role} login noinherit;
              end if;
            end $$;
            alter role {role} login password '{local_supabase.postgres.password_for(role)}';
        """)

        def ping(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
            conn.execute("select 1")
            conn.rollback()
            return ApiResponse(200, [], b"up")

        gateway = make_gateway(ping, pool_size=1, pool_timeout=0.5,
                               database_url=local_supabase.postgres.dsn(role))
        try:
            with httpx.Client(headers={"apikey": key}) as client:
                assert client.get(gateway.url + "/rest/v1/x").status_code == 200
                local_supabase.execute_sql(
                    f"alter role {role} nologin;"
                    f"select pg_terminate_backend(pid) from pg_stat_activity where usename = '{role}'"
                )
                statuses = [client.get(gateway.url + "/rest/v1/x") for _ in range(3)]
                assert statuses[0].status_code == 503  # the pooled connection was dropped
                down = statuses[-1]
                assert down.status_code == 503 and "retry-after" in down.headers
                assert down.json()["code"] == "PGRST000"
                assert down.json()["message"] == "Database connection error."
                assert "not permitted to log in" in down.json()["details"]
                local_supabase.execute_sql(f"alter role {role} login")
                for _ in range(60):  # the pool reconnects with its own backoff
                    if client.get(gateway.url + "/rest/v1/x").status_code == 200:
                        break
                else:
                    pytest.fail("the gateway did not recover after the database accepted logins again")
        finally:
            local_supabase.execute_sql(f"alter role {role} login")


# --- lifecycle --------------------------------------------------------------------------------


def _gateway_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gateway-")]


class TestLifecycle:
    def test_start_accepts_at_once_and_stop_is_idempotent(
        self, make_config: Callable[..., GatewayConfig], key: str
    ) -> None:
        before = set(_gateway_threads())
        gateway = Gateway(make_config(), executor=echo_executor)
        gateway.start()
        assert gateway.url == f"http://127.0.0.1:{gateway.port}"
        with pytest.raises(GatewayError):
            gateway.start()
        idle = RawConnection(gateway)  # an idle keep-alive connection must not block stop()
        assert idle.request("GET", "/rest/v1/docs", {"apikey": key}).status == 200
        gateway.stop()
        gateway.stop()
        assert idle.at_eof()
        idle.close()
        assert set(_gateway_threads()) <= before
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", gateway.port), timeout=2).close()

    def test_unreachable_database_fails_start_with_advice(
        self, make_config: Callable[..., GatewayConfig]
    ) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        config = make_config(database_url=f"postgresql://authenticator@127.0.0.1:{closed_port}/postgres",
                             pool_size=1, pool_timeout=0.5)
        gateway = Gateway(config, executor=echo_executor)
        with pytest.raises(GatewayError, match="could not connect to PostgreSQL"):
            gateway.start()
        assert not gateway.running
        gateway.stop()

    def test_short_jwt_secret_is_refused(self, make_config: Callable[..., GatewayConfig]) -> None:
        with pytest.raises(GatewayError, match="at least 32 characters"):
            Gateway(make_config(jwt_secret="too-short"), executor=echo_executor)


# --- request log ------------------------------------------------------------------------------


class TestRequestLog:
    def test_every_request_is_logged_with_path_query_and_status(self, raw: RawConnection, gateway: Gateway,
                                                                key: str) -> None:
        raw.request("GET", "/rest/v1/parlant_sessions_events?select=*&id=eq.1", {"apikey": key})
        raw.request("POST", "/rest/v1/rpc/parlant_merge_document", {"apikey": key}, b"{}")
        raw.request("GET", "/rest/v1/docs", {})
        raw.request("GET", "/elsewhere?x=1", {})
        assert gateway.requests.entries() == [
            LoggedRequest("GET", "/rest/v1/parlant_sessions_events", "select=*&id=eq.1", 200),
            LoggedRequest("POST", "/rest/v1/rpc/parlant_merge_document", "", 200),
            LoggedRequest("GET", "/rest/v1/docs", "", 401),
            LoggedRequest("GET", "/elsewhere", "x=1", 404),
        ]
        assert gateway.requests.count() == 4
        assert gateway.requests.count(method="get") == 3
        assert gateway.requests.count(method="POST", path_contains="/rpc/") == 1
        assert gateway.requests.count(path_contains="parlant_") == 2
        gateway.requests.clear()
        assert gateway.requests.entries() == [] and gateway.requests.count() == 0

    @pytest.mark.parametrize("name", ["apikey", "api%6Bey", "%61%70%69%6b%65%79", "APIKEY", "apike%79"])
    def test_an_apikey_parameter_is_redacted_by_its_decoded_name(
        self, raw: RawConnection, gateway: Gateway, key: str, name: str
    ) -> None:
        encoded = key.replace(".", "%2E")
        resp = raw.request("GET", f"/rest/v1/docs?select=*&{name}={encoded}&id=eq.1", {})
        entries = gateway.requests.entries()
        assert len(entries) == 1
        logged = entries[0].query
        assert logged == f"select=*&{name}={key[:6]}...&id=eq.1"
        assert key[6:12] not in logged and encoded[6:12] not in logged
        if name == "api%6Bey" or name.startswith("%61"):
            assert resp.status == 200  # the key layer read the same decoded name

    def test_an_apikey_parameter_without_a_value_is_logged_by_name_only(
        self, raw: RawConnection, gateway: Gateway, key: str
    ) -> None:
        raw.request("GET", "/rest/v1/docs?api%6Bey&x=1", {"apikey": key})
        assert gateway.requests.entries()[0].query == "api%6Bey&x=1"

    def test_capture_holds_only_the_requests_inside_the_block(self, gateway: Gateway, key: str) -> None:
        with httpx.Client(headers={"apikey": key}) as client:
            client.get(gateway.url + "/rest/v1/before")
            with gateway.requests.capture() as cap:
                client.get(gateway.url + "/rest/v1/inside")
                client.post(gateway.url + "/rest/v1/inside", json={})
            client.get(gateway.url + "/rest/v1/after")
        assert [(e.method, e.path) for e in cap.entries()] == [("GET", "/rest/v1/inside"), ("POST", "/rest/v1/inside")]
        assert cap.count(method="POST") == 1 and len(cap) == 2
        assert gateway.requests.count() == 4

    def test_concurrent_requests_are_all_recorded(self, gateway: Gateway, key: str) -> None:
        def worker(n: int) -> None:
            with httpx.Client(headers={"apikey": key}) as client:
                for i in range(25):
                    assert client.get(f"{gateway.url}/rest/v1/t{n}?i={i}").status_code == 200

        with gateway.requests.capture() as cap:
            threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        assert len(cap) == 200 and gateway.requests.count() == 200
        assert all(cap.count(path_contains=f"/t{n}") == 25 for n in range(8))


class TestRequestLogUnit:
    def test_keeps_the_newest_entries_up_to_its_limit(self) -> None:
        log = RequestLog(max_entries=3)
        for i in range(5):
            log.record("GET", f"/rest/v1/t{i}", "", 200)
        assert [e.path for e in log.entries()] == ["/rest/v1/t2", "/rest/v1/t3", "/rest/v1/t4"]

    def test_entries_is_a_copy_and_captures_nest(self) -> None:
        log = RequestLog()
        with log.capture() as outer:
            log.record("GET", "/a", "", 200)
            with log.capture() as inner:
                log.record("PATCH", "/b", "id=eq.1", 204)
            log.record("DELETE", "/c", "", 204)
        log.record("GET", "/d", "", 200)
        entries = log.entries()
        entries.clear()
        assert len(log.entries()) == 4
        assert [e.path for e in outer] == ["/a", "/b", "/c"]
        assert inner.entries() == [LoggedRequest("PATCH", "/b", "id=eq.1", 204)]

    def test_rejects_a_useless_limit(self) -> None:
        with pytest.raises(ValueError):
            RequestLog(max_entries=0)


# --- request-line limit (Kong/nginx large_client_header_buffers 4 8k) -------------------------


def request_line(total: int, *, prefix: str = "GET /rest/v1/docs?x=") -> bytes:
    """A request line of exactly `total` bytes, its CRLF included."""
    suffix = " HTTP/1.1\r\n"
    return (prefix + "a" * (total - len(prefix) - len(suffix)) + suffix).encode()


class TestRequestLineLimit:
    def test_the_default_limit_is_8_kib(self, make_config: Callable[..., GatewayConfig]) -> None:
        assert make_config().max_request_line == 8192

    def test_a_request_line_of_8192_bytes_with_its_crlf_passes(self, raw: RawConnection, key: str) -> None:
        line = request_line(8192)
        raw.send(line + f"Host: x\r\napikey: {key}\r\n\r\n".encode())
        resp = raw.read()
        assert resp.status == 200
        assert resp.json()["query"] == [["x", "a" * (8192 - len("GET /rest/v1/docs?x=") - len(" HTTP/1.1\r\n"))]]
        assert raw.request("GET", "/rest/v1/docs", {"apikey": key}).status == 200  # kept alive

    @pytest.mark.parametrize("total", [8193, 8194, 64 * 1024])
    def test_one_byte_more_is_414_uri_too_long_as_kong_answers_and_closes(
        self, raw: RawConnection, gateway: Gateway, key: str, total: int
    ) -> None:
        raw.send(request_line(total, prefix=f"GET /rest/v1/docs?apikey={key}&x=") + b"Host: x\r\n\r\n")
        resp = raw.read()
        assert resp.status == 414
        assert resp.header("Content-Type") == "text/plain; charset=utf-8"
        assert resp.body == b"URI too long\n"
        assert resp.header("Content-Length") == "13"
        assert resp.header("Server") == "kong/2.8.1"
        assert resp.header("Connection") == "close"
        assert raw.at_eof()
        # Logged without its query, so the key in it cannot leak.
        assert gateway.requests.entries() == [LoggedRequest("GET", "/rest/v1/docs", "", 414)]

    def test_the_limit_applies_before_routing_and_authentication(self, raw: RawConnection) -> None:
        raw.send(request_line(9000, prefix="POST /anything/else?x=") + b"Content-Length: 0\r\n\r\n")
        assert raw.read().status == 414

    def test_a_line_feed_alone_counts_as_one_byte(self, raw: RawConnection, key: str) -> None:
        line = request_line(8193)[:-2] + b"\n"  # 8192 bytes with a bare LF
        raw.send(line + f"apikey: {key}\r\n\r\n".encode())
        assert raw.read().status == 200

    def test_the_limit_is_configurable(self, make_gateway: Callable[..., Gateway], key: str) -> None:
        gateway = make_gateway(max_request_line=100)
        conn = RawConnection(gateway)
        try:
            conn.send(request_line(100) + f"apikey: {key}\r\n\r\n".encode())
            assert conn.read().status == 200
            conn.send(request_line(101) + f"apikey: {key}\r\n\r\n".encode())
            assert conn.read().status == 414
        finally:
            conn.close()

    def test_nginx_style_body_on_request(self, make_gateway: Callable[..., Gateway]) -> None:
        gateway = make_gateway(uri_too_long="nginx")
        conn = RawConnection(gateway)
        try:
            conn.send(request_line(8193) + b"\r\n")
            resp = conn.read()
        finally:
            conn.close()
        assert resp.status == 414
        assert resp.header("Content-Type") == "text/html"
        assert resp.header("Server") == "nginx"
        assert resp.body.startswith(b"<html>\r\n<head><title>414 Request-URI Too Large</title></head>")
        assert b"<center><h1>414 Request-URI Too Large</h1></center>" in resp.body

    def test_httpx_sees_the_414(self, gateway: Gateway, key: str) -> None:
        long_query = "id=in.(" + ",".join(str(i) for i in range(3000)) + ")"
        resp = httpx.get(f"{gateway.url}/rest/v1/docs?{long_query}", headers={"apikey": key})
        assert resp.status_code == 414
        assert resp.text == "URI too long\n"
