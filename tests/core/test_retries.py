"""Retries against real failures: a loopback proxy in front of the stand-in drops responses
(the request was applied, the answer lost) or answers 503 (nothing applied)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from core_helpers import Doc, MakeDb, identity

from parlant_supabase_sync.errors import DuplicateDocument, TransientError
from parlant_supabase_sync.local import LocalSupabase


class FaultyProxy:
    """Forwards to the stand-in; ``fail(method, path_part, kind)`` breaks the next such request.

    kind "drop": forward it, then close the connection without answering.
    kind "503": answer 503 without forwarding.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._faults: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=upstream, trust_env=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                kind = proxy._take(self.command, self.path)
                if kind == "503":
                    payload = b'{"message":"unavailable"}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
                response = proxy._client.request(self.command, self.path, content=body, headers=headers)
                if kind == "drop":
                    self.close_connection = True
                    return
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            do_GET = do_POST = do_PATCH = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail(self, method: str, path_part: str, kind: str) -> None:
        with self._lock:
            self._faults.append((method, path_part, kind))

    def _take(self, method: str, path: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault[0] == method and fault[1] in path:
                    self._faults.remove(fault)
                    return fault[2]
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


@pytest.fixture
def proxy(stand_in: LocalSupabase) -> Iterator[FaultyProxy]:
    faulty = FaultyProxy(stand_in.url)
    yield faulty
    faulty.close()


def _doc(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"d{i}", "version": "1", "creation_utc": f"2024-{i:02d}", **extra}


def _collection(make_db: MakeDb, proxy: FaultyProxy) -> Any:
    db = make_db(url=proxy.url)
    return db, db.get_or_create_collection("docs", Doc, identity)


def test_an_insert_whose_answer_was_lost_succeeds_once(make_db: MakeDb, proxy: FaultyProxy) -> None:
    db, docs = _collection(make_db, proxy)
    proxy.fail("POST", "parlant_write", "drop")
    before = db.request_count
    docs.insert_one(_doc(1, n=1))
    assert db.request_count - before == 2  # lost POST; the repeat returns the recorded outcome
    assert docs.find({}).items == [_doc(1, n=1)]


def test_a_retried_insert_still_refuses_someone_elses_document(make_db: MakeDb, proxy: FaultyProxy) -> None:
    _, docs = _collection(make_db, proxy)
    docs.insert_one(_doc(1, owner="first"))
    proxy.fail("POST", "parlant_write", "503")
    with pytest.raises(DuplicateDocument):
        docs.insert_one(_doc(1, owner="second"))


def test_reads_and_writes_are_retried_after_503(make_db: MakeDb, proxy: FaultyProxy) -> None:
    db, docs = _collection(make_db, proxy)
    proxy.fail("POST", "parlant_write", "503")
    docs.insert_one(_doc(1))
    proxy.fail("GET", "_docs", "503")
    proxy.fail("GET", "_docs", "503")
    before = db.request_count
    assert docs.find({}).items == [_doc(1)]
    assert db.request_count - before == 3


def test_a_merge_that_moved_the_id_is_recognised_on_retry(make_db: MakeDb, proxy: FaultyProxy) -> None:
    _, docs = _collection(make_db, proxy)
    docs.insert_one(_doc(1, a=1))
    proxy.fail("POST", "parlant_write", "drop")
    result = docs.update_one({"id": {"$eq": "d1"}}, {"id": "moved", "b": 2})
    assert result.matched_count == 1
    assert result.updated_document == {**_doc(1, a=1), "id": "moved", "b": 2}


def test_a_delete_whose_answer_was_lost_still_reports_the_document(make_db: MakeDb, proxy: FaultyProxy) -> None:
    _, docs = _collection(make_db, proxy)
    docs.insert_one(_doc(1, group="g"))
    proxy.fail("POST", "parlant_write", "drop")
    result = docs.delete_one({"group": {"$eq": "g"}})
    assert (result.deleted_count, result.deleted_document) == (1, _doc(1, group="g"))
    assert docs.find({}).items == []


def test_a_pinned_delete_whose_answer_was_lost_reports_the_document(
    make_db: MakeDb, proxy: FaultyProxy
) -> None:
    db, docs = _collection(make_db, proxy)
    docs.insert_one(_doc(1))
    proxy.fail("POST", "parlant_write", "drop")
    before = db.request_count
    result = docs.delete_one({"id": {"$eq": "d1"}})
    assert (result.deleted_count, result.deleted_document) == (1, _doc(1))
    assert db.request_count - before == 2


def test_an_upsert_whose_answer_was_lost_reports_the_same_result(
    make_db: MakeDb, proxy: FaultyProxy
) -> None:
    _, docs = _collection(make_db, proxy)
    proxy.fail("POST", "parlant_write", "drop")
    result = docs.update_one({"id": {"$eq": "d1"}}, _doc(1, a=1), upsert=True)
    assert (result.matched_count, result.updated_document) == (0, _doc(1, a=1))
    proxy.fail("POST", "parlant_write", "drop")
    result = docs.update_one({"id": {"$eq": "d1"}}, {"b": 2}, upsert=True)
    assert (result.matched_count, result.updated_document) == (1, _doc(1, a=1, b=2))
    assert docs.find({}).items == [_doc(1, a=1, b=2)]


def test_connection_refused_is_retried_then_raised(make_db: MakeDb) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = make_db(url=f"http://127.0.0.1:{port}", retry={"attempts": 3, "base_delay": 0.01, "max_delay": 0.02})
    with pytest.raises(TransientError) as caught:
        db.get_or_create_collection("docs", Doc, identity)
    assert caught.value.maybe_applied is False
    assert db.request_count == 3
