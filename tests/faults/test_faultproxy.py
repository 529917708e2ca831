"""FaultProxy itself, with plain httpx against the stand-in: passthrough with keep-alive, each
fault kind doing what it says (checked in PostgreSQL directly), seeding, bounds and stopping."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from faults_helpers import FreshTable, MakeProxy

from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.local.faultproxy import (
    FAULT_KINDS,
    FaultEvent,
    FaultProxy,
    FaultProxyError,
)

REPRESENTATION = {"Prefer": "return=representation"}


def _client(proxy: FaultProxy, stand_in: LocalSupabase, read: float = 5.0) -> httpx.Client:
    return httpx.Client(
        base_url=proxy.url + "/rest/v1",
        headers={"apikey": stand_in.secret_key},
        timeout=httpx.Timeout(5.0, read=read),
        trust_env=False,
    )


def _row(doc_id: str, **data: Any) -> dict[str, Any]:
    return {"id": doc_id, "data": {"id": doc_id, **data}}


def _insert(client: httpx.Client, table: FreshTable, doc_id: str) -> httpx.Response:
    return client.post(f"/{table.table}", json=_row(doc_id), headers=REPRESENTATION)


@pytest.fixture
def stand_in(fault_stand_in: LocalSupabase) -> LocalSupabase:
    return fault_stand_in


# --- passthrough ----------------------------------------------------------------------------


def test_passthrough_keeps_one_connection_alive_and_answers_like_the_gateway(
    make_proxy: MakeProxy, stand_in: LocalSupabase, fresh_table: FreshTable
) -> None:
    proxy = make_proxy()
    path = f"/{fresh_table.table}"
    with _client(proxy, stand_in) as client:
        created = client.post(path, json=_row("a", n=1), headers=REPRESENTATION)
        assert created.status_code == 201
        assert created.json()[0]["data"] == {"id": "a", "n": 1}
        # A chunked request body (httpx chunks an iterator) reaches the gateway whole.
        chunked = client.post(
            path,
            content=iter([b'{"id": "b", ', b'"data": {"id": "b"}}']),
            headers={**REPRESENTATION, "Content-Type": "application/json"},
        )
        assert chunked.status_code == 201, chunked.text
        listed = client.get(path, params={"select": "id", "order": "id"})
        assert listed.json() == [{"id": "a"}, {"id": "b"}]
        head = client.head(path, params={"select": "id"})
        assert (head.status_code, head.content) == (200, b"")
        deleted = client.delete(path, params={"id": "eq.b"})  # 204, no body
        assert (deleted.status_code, deleted.content) == (204, b"")
        missing = client.get("/no_such_table")
        assert missing.status_code == 404 and missing.json()["code"] == "PGRST205"
        assert client.get(path, params={"select": "id"}).json() == [{"id": "a"}]
    assert proxy.connections == 1
    assert proxy.requests == 7
    assert proxy.faults == 0 and proxy.log == []
    assert set(proxy.counters) == set(FAULT_KINDS)


# --- each fault kind ------------------------------------------------------------------------


def test_reset_before_sends_rst_and_nothing_reaches_the_server(
    make_proxy: MakeProxy, stand_in: LocalSupabase, fresh_table: FreshTable
) -> None:
    proxy = make_proxy()
    proxy.script("reset_before", method="POST")
    before = stand_in.requests.count()
    with _client(proxy, stand_in) as client:
        with pytest.raises(httpx.ReadError) as caught:
            _insert(client, fresh_table, "a")
        assert "reset" in str(caught.value).lower()
    assert stand_in.requests.count() == before
    assert fresh_table.rows() == {}
    assert proxy.log == [FaultEvent("POST", f"/rest/v1/{fresh_table.table}", "reset_before")]


def test_reset_after_commits_then_resets(
    make_proxy: MakeProxy, stand_in: LocalSupabase, fresh_table: FreshTable
) -> None:
    proxy = make_proxy()
    proxy.script("reset_after", method="POST")
    with _client(proxy, stand_in) as client:
        with pytest.raises(httpx.ReadError):
            _insert(client, fresh_table, "a")
        # The next request opens a new connection and works.
        assert client.get(f"/{fresh_table.table}", params={"select": "id"}).json() == [{"id": "a"}]
    assert fresh_table.rows() == {"a": {"id": "a"}}
    assert proxy.counters["reset_after"] == 1 and proxy.connections == 2


def test_hold_outlasts_the_read_timeout_after_the_server_committed(
    make_proxy: MakeProxy, stand_in: LocalSupabase, fresh_table: FreshTable
) -> None:
    proxy = make_proxy(hold_seconds=1.5)
    proxy.script("hold", method="POST")
    with _client(proxy, stand_in, read=0.5) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            _insert(client, fresh_table, "a")
        assert time.monotonic() - started < 1.4
    assert fresh_table.rows() == {"a": {"id": "a"}}
    assert proxy.counters["hold"] == 1


@pytest.mark.parametrize("style", ["json", "html"])
@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors(
    make_proxy: MakeProxy,
    stand_in: LocalSupabase,
    fresh_table: FreshTable,
    status: int,
    style: str,
) -> None:
    proxy = make_proxy()
    kind: Any = f"gateway_{status}"
    proxy.script(kind, method="POST", body=style)  # type: ignore[arg-type]
    before = stand_in.requests.count()
    with _client(proxy, stand_in) as client:
        answer = _insert(client, fresh_table, "a")
        assert answer.status_code == status
        content_type = answer.headers["content-type"]
        if style == "json":
            assert content_type.startswith("application/json")
            assert set(answer.json()) == {"message"}
        else:
            assert content_type.startswith("text/html")
            assert str(status) in answer.text and "<html" in answer.text.lower()
        # The connection stays alive after a gateway error page.
        assert client.get(f"/{fresh_table.table}", params={"select": "id"}).status_code == 200
    assert proxy.connections == 1
    forwarded = status != 503
    assert stand_in.requests.count() - before == (2 if forwarded else 1)
    assert fresh_table.rows() == ({"a": {"id": "a"}} if forwarded else {})


def test_the_kong_502_body(make_proxy: MakeProxy, stand_in: LocalSupabase, fresh_table: FreshTable) -> None:
    proxy = make_proxy(gateway_body="json")
    proxy.script("gateway_502")
    with _client(proxy, stand_in) as client:
        answer = client.get(f"/{fresh_table.table}")
    assert answer.json() == {"message": "An invalid response was received from the upstream server"}


def test_cut_body_sends_the_real_length_and_half_the_body(
    make_proxy: MakeProxy, stand_in: LocalSupabase, fresh_table: FreshTable
) -> None:
    proxy = make_proxy()
    with _client(proxy, stand_in) as client:
        _insert(client, fresh_table, "a")
        proxy.script("cut_body", method="POST")
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            _insert(client, fresh_table, "b")
        assert "incomplete" in str(caught.value) or "complete message body" in str(caught.value)
        # An empty body (204): the head itself is cut.
        proxy.script("cut_body", method="DELETE")
        with pytest.raises(httpx.RemoteProtocolError):
            client.delete(f"/{fresh_table.table}", params={"id": "eq.a"})
    assert set(fresh_table.rows()) == {"b"}
    assert proxy.counters["cut_body"] == 2


def test_framed_cut_is_correctly_framed_but_not_json(
    make_proxy: MakeProxy, stand_in: LocalSupabase, fresh_table: FreshTable
) -> None:
    proxy = make_proxy()
    path = f"/{fresh_table.table}"
    with _client(proxy, stand_in) as client:
        _insert(client, fresh_table, "a")
        whole = client.get(path, params={"select": "id,data"})
        proxy.script("framed_cut", method="GET")
        cut = client.get(path, params={"select": "id,data"})
        proxy.script("framed_cut", method="POST")
        created = _insert(client, fresh_table, "b")
        assert client.get(path, params={"select": "id"}).status_code == 200  # still alive
    assert cut.status_code == 200 and created.status_code == 201
    assert 0 < len(cut.content) < len(whole.content)
    assert whole.content.startswith(cut.content)
    assert int(cut.headers["content-length"]) == len(cut.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    assert set(fresh_table.rows()) == {"a", "b"}
    assert proxy.connections == 1


def test_html_200_is_a_captive_portal_after_forwarding(
    make_proxy: MakeProxy, stand_in: LocalSupabase, fresh_table: FreshTable
) -> None:
    proxy = make_proxy()
    proxy.script("html_200", method="POST")
    with _client(proxy, stand_in) as client:
        answer = _insert(client, fresh_table, "a")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.text.lstrip().lower().startswith("<!doctype html>")
    assert fresh_table.rows() == {"a": {"id": "a"}}


# --- scripts, seeds, bounds ------------------------------------------------------------------


def test_scripts_match_method_and_path_and_run_out(
    make_proxy: MakeProxy, stand_in: LocalSupabase, fresh_table: FreshTable
) -> None:
    proxy = make_proxy()
    proxy.script("gateway_503", method="GET", path_contains=fresh_table.table, times=2)
    with _client(proxy, stand_in) as client:
        assert client.get("/no_such_table").status_code == 404  # another path: no fault
        assert _insert(client, fresh_table, "a").status_code == 201  # another method
        statuses = [client.get(f"/{fresh_table.table}").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert [event.kind for event in proxy.log] == ["gateway_503", "gateway_503"]
    proxy.script("gateway_504", after=2)
    with _client(proxy, stand_in) as client:
        statuses = [client.get("/no_such_table").status_code for _ in range(4)]
    assert statuses == [404, 404, 504, 404]


def _random_run(stand_in: LocalSupabase, proxy: FaultProxy) -> list[int]:
    statuses = []
    with _client(proxy, stand_in) as client:
        for _ in range(40):
            statuses.append(client.get("/no_such_table").status_code)
    return statuses


def test_random_faults_are_seeded_weighted_and_bounded(
    make_proxy: MakeProxy, stand_in: LocalSupabase
) -> None:
    weights = {"gateway_502": 1.0, "gateway_503": 2.0, "framed_cut": 1.0}
    runs = []
    for _ in range(2):
        proxy = make_proxy(seed=7, rate=0.5, weights=weights, max_faults=12)
        statuses = _random_run(stand_in, proxy)
        runs.append((statuses, proxy.log, proxy.counters))
        assert proxy.faults == 12  # 40 requests at rate 0.5 exceed the bound
        assert sum(proxy.counters.values()) == 12
        assert {e.kind for e in proxy.log} <= set(weights)
        assert statuses.count(502) == proxy.counters["gateway_502"]
        assert statuses.count(503) == proxy.counters["gateway_503"]
        assert statuses[-5:] == [404] * 5  # the bound held: the last requests pass through
    assert runs[0] == runs[1]
    other = make_proxy(seed=8, rate=0.5, weights=weights, max_faults=12)
    _random_run(stand_in, other)
    assert other.log != runs[0][1]


def test_match_limits_random_faults_and_set_rate_changes_them(
    make_proxy: MakeProxy, stand_in: LocalSupabase, fresh_table: FreshTable
) -> None:
    proxy = make_proxy(rate=1.0, weights={"gateway_503": 1}, match=lambda m, p: m == "POST")
    with _client(proxy, stand_in) as client:
        assert client.get(f"/{fresh_table.table}").status_code == 200
        assert _insert(client, fresh_table, "a").status_code == 503
        proxy.set_rate(0.0)
        assert _insert(client, fresh_table, "a").status_code == 201
    with pytest.raises(FaultProxyError):
        proxy.set_rate(1.5)
    with pytest.raises(FaultProxyError):
        proxy.set_rate(0.5, {"no_such_kind": 1.0})


def test_concurrent_clients_are_counted_exactly(
    make_proxy: MakeProxy, stand_in: LocalSupabase
) -> None:
    proxy = make_proxy(seed=3, rate=0.3, weights={"gateway_503": 1.0, "gateway_504": 1.0})
    seen: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        with _client(proxy, stand_in) as client:
            for _ in range(15):
                status = client.get("/no_such_table").status_code
                with lock:
                    seen.append(status)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(seen) == 90 and proxy.requests == 90
    assert seen.count(503) == proxy.counters["gateway_503"]
    assert seen.count(504) == proxy.counters["gateway_504"]
    assert len(proxy.log) == seen.count(503) + seen.count(504) > 0


def test_loopback_only_and_bad_settings_are_refused() -> None:
    for upstream in ("http://10.0.0.1:80", "http://example.com:80", "https://127.0.0.1:1", "http://127.0.0.1"):
        with pytest.raises(FaultProxyError):
            FaultProxy(upstream)
    with pytest.raises(FaultProxyError):
        FaultProxy("http://127.0.0.1:1", deadline=0)
    with FaultProxy("http://127.0.0.1:1") as proxy:
        assert proxy.url.startswith("http://127.0.0.1:")


def _proxy_threads(proxy: FaultProxy) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.endswith(f"-{proxy.port}")]


def test_the_proxy_stops_by_itself_at_its_deadline(
    make_proxy: MakeProxy, stand_in: LocalSupabase
) -> None:
    proxy = make_proxy(deadline=1.0, hold_seconds=30.0)
    with _client(proxy, stand_in, read=10.0) as client:
        assert client.get("/no_such_table").status_code == 404
        proxy.script("hold")
        started = time.monotonic()
        with pytest.raises(httpx.TransportError):
            client.get("/no_such_table")  # held, then closed when the deadline stops the proxy
        assert time.monotonic() - started < 5.0
    _wait_for(lambda: not proxy.running and not _proxy_threads(proxy))
    with socket.socket() as sock:
        sock.settimeout(1.0)
        assert sock.connect_ex(("127.0.0.1", proxy.port)) != 0


def test_stop_ends_held_and_idle_connections_at_once(
    make_proxy: MakeProxy, stand_in: LocalSupabase
) -> None:
    proxy = make_proxy(hold_seconds=60.0)
    idle = _client(proxy, stand_in)
    assert idle.get("/no_such_table").status_code == 404  # leaves an idle keep-alive connection
    proxy.script("hold")
    errors: list[BaseException] = []

    def held() -> None:
        with _client(proxy, stand_in, read=30.0) as client:
            try:
                client.get("/no_such_table")
            except httpx.TransportError as exc:
                errors.append(exc)

    thread = threading.Thread(target=held)
    thread.start()
    _wait_for(lambda: proxy.counters["hold"] == 1)
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 3.0
    thread.join(10)
    idle.close()
    assert not thread.is_alive() and len(errors) == 1
    assert _proxy_threads(proxy) == []


def test_max_connections_bounds_the_threads(make_proxy: MakeProxy, stand_in: LocalSupabase) -> None:
    proxy = make_proxy(max_connections=2)
    clients = [_client(proxy, stand_in) for _ in range(3)]
    try:
        assert clients[0].get("/no_such_table").status_code == 404
        assert clients[1].get("/no_such_table").status_code == 404
        with pytest.raises(httpx.TransportError):
            clients[2].get("/no_such_table")
    finally:
        for client in clients:
            client.close()
    assert proxy.connections == 2


# --- response framing from other upstreams -----------------------------------------------------


@pytest.fixture
def raw_upstream() -> Iterator[tuple[str, list[bytes]]]:
    """A tiny upstream answering from a list of raw responses (one connection at a time)."""
    answers: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(5.0)
            with conn:
                buffer = b""
                while answers and not stop.is_set():
                    while b"\r\n\r\n" not in buffer:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buffer += chunk
                    if b"\r\n\r\n" not in buffer:
                        break
                    buffer = buffer.split(b"\r\n\r\n", 1)[1]
                    answer = answers.pop(0)
                    conn.sendall(answer)
                    if b"Content-Length" not in answer and b"chunked" not in answer:
                        break  # a read-to-close body ends with the connection

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", answers
    stop.set()
    thread.join(5)
    listener.close()


def test_chunked_and_read_to_close_upstream_bodies_are_reframed(
    raw_upstream: tuple[str, list[bytes]],
) -> None:
    url, answers = raw_upstream
    answers.extend(
        [
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"),
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
        ]
    )
    with FaultProxy(url, deadline=30.0) as proxy, httpx.Client(base_url=proxy.url, timeout=5.0) as client:
        first = client.get("/a")
        assert (first.status_code, first.content) == (200, b"hello world")
        assert first.headers["content-length"] == "11" and "transfer-encoding" not in first.headers
        second = client.get("/b")
        assert (second.status_code, second.content) == (304, b"")
        third = client.get("/c")
        assert (third.status_code, third.content) == (200, b"until the end")
    assert proxy.connections == 1  # the client side stayed alive across all three


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
