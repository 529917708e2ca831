"""The gateway's HTTP/1.1 server: framing, keep-alive, the request-line limit, parsing helpers.

Stdlib `ThreadingHTTPServer`, one daemon thread per connection, `TCP_NODELAY`, each response
written with a single send. Request lines longer than `GatewayConfig.max_request_line` get
Kong's 414 and the connection is closed, before any routing or key check.
"""

from __future__ import annotations

import email.utils
import logging
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlsplit

from .gateway_auth import _gateway_reply, _Reply

if TYPE_CHECKING:
    from .gateway import Gateway

logger = logging.getLogger("parlant_supabase_sync.local.gateway")

_SERVER = "postgrest/14-local"
#: Supabase's API gateway is Kong on nginx, whose `large_client_header_buffers 4 8k` must hold
#: the whole request line (method, target, version and the line break): 8 KiB.
DEFAULT_MAX_REQUEST_LINE = 8192
# What a reader without a limit (max_request_line=None) still stops at.
_UNLIMITED_REQUEST_LINE = 64 * 1024 * 1024
# Kong answers an over-long request line through its error_page handler: "URI too long" in its
# default error type, text/plain, because no request header (Accept) has been read yet
# (Kong/kong kong/error_handlers.lua; hosted Supabase's body in supabase-js#766 and
# postgrest-py#365 is exactly `URI too long\n`). `uri_too_long="nginx"` gives bare nginx's page.
_KONG_SERVER = "kong/2.8.1"  # the version Supabase's self-hosted compose file pins
_URI_TOO_LONG_KONG = (
    [("Content-Type", "text/plain; charset=utf-8"), ("Server", _KONG_SERVER)],
    b"URI too long\n",
)
_URI_TOO_LONG_NGINX = (
    [("Content-Type", "text/html"), ("Server", "nginx")],
    (b"<html>\r\n<head><title>414 Request-URI Too Large</title></head>\r\n<body>\r\n"
    b"<center><h1>414 Request-URI Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"),
)
_MAX_BODY = 256 * 1024 * 1024
_MAX_CHUNK_LINE = 4096
# Headers the gateway itself sets on every response; an executor's copies are dropped.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
_NO_BODY_STATUSES = frozenset({204, 304})


# --------------------------------------------------------------------------------------------
# request parsing helpers


def _parse_query(raw: str) -> list[tuple[str, str]]:
    """PostgREST's query parsing: `&`-separated, `+` is a space, keys without `=` are dropped."""
    pairs: list[tuple[str, str]] = []
    for part in raw.split("&"):
        key, sep, value = part.partition("=")
        if sep:
            pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def _redact_query(raw: str) -> str:
    """The raw query with every `apikey` value cut to 6 characters (for the request log).

    The parameter is recognised by its decoded name (`api%6Bey` is `apikey` to the key layer
    too), in any case, and with or without a value.
    """
    parts = []
    for part in raw.split("&"):
        key, sep, value = part.partition("=")
        if unquote_plus(key).lower() == "apikey":
            part = f"{key}={_key_hint(unquote_plus(value))}" if sep else key
        parts.append(part)
    return "&".join(parts)


def _key_hint(key: str) -> str:
    """At most 6 leading characters of a key, for logs."""
    return f"{key[:6]}..." if key else ""


def _header_text(value: str) -> str:
    """http.client decodes header bytes as Latin-1; PostgREST sees them as UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache
    now = int(time.time())
    cached = _date_cache
    if cached[0] != now:
        cached = (now, email.utils.formatdate(now, usegmt=True))
        _date_cache = cached
    return cached[1]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------------------------
# HTTP server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = _SERVER
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        # Loopback round trips must not wait for delayed ACKs (Nagle + delayed ACK = ~40 ms).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
        self.server.track(self.request, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.request, add=False)

    # BaseHTTPRequestHandler writes to stderr, and its messages quote the request line (which
    # may hold `?apikey=`): log nothing from it.
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Never echo the request line back (it may hold a key) and answer in JSON.
        self.close_connection = True
        status = int(code)
        self._send(_gateway_reply(status, {"message": HTTPStatus(status).phrase}), head_only=False)

    def handle_one_request(self) -> None:
        try:
            limit = self.server.gateway._config.max_request_line
            cap = _UNLIMITED_REQUEST_LINE if limit is None else limit
            self.raw_requestline = self.rfile.readline(cap + 1)
            if len(self.raw_requestline) > cap:
                self._uri_too_long()
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            try:
                body = self._read_body()
            except _BadRequest as bad:
                self.close_connection = True
                self.server.gateway._reply(self, _gateway_reply(bad.status, {"message": bad.message}))
                return
            if body is None:  # the client went away mid-body
                self.close_connection = True
                return
            self.server.gateway._serve(self, body)
        except OSError:  # the peer reset or closed the connection, or stop() shut it down
            self.close_connection = True

    def _uri_too_long(self) -> None:
        """414 as Kong/nginx answer it, then close (the rest of the request is never read)."""
        line = self.raw_requestline.decode("latin-1")
        self.requestline = ""
        self.request_version = ""
        self.command = ""
        self.close_connection = True
        headers, body = _URI_TOO_LONG_NGINX if self.server.gateway._config.uri_too_long == "nginx" else _URI_TOO_LONG_KONG
        method, _, target = line.partition(" ")
        # Logged without its query (it may hold a key); the path is cut to the limit read.
        path = _split_target(target.split(" ", 1)[0])[0] if method.isalpha() else ""
        self.server.gateway.requests.record(method if method.isalpha() else "", path, "", 414)
        self._send(_Reply(414, list(headers), body), head_only=False)

    def _read_body(self) -> bytes | None:
        transfer_encoding = self.headers.get("Transfer-Encoding")
        if transfer_encoding is not None:
            codings = [c.strip().lower() for c in transfer_encoding.split(",")]
            if codings != ["chunked"]:
                raise _BadRequest(501, "Only the chunked transfer coding is supported")
            return self._read_chunked()
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            return b""
        values = {v.strip() for v in lengths}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise _BadRequest(400, "Invalid Content-Length header")
        length = int(next(iter(values)))
        if length > _MAX_BODY:
            raise _BadRequest(413, f"Request body larger than {_MAX_BODY} bytes")
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(_MAX_CHUNK_LINE + 1)
            if not line:
                return None
            if len(line) > _MAX_CHUNK_LINE:
                raise _BadRequest(400, "Chunk size line too long")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequest(400, "Invalid chunk size") from None
            if size < 0:
                raise _BadRequest(400, "Invalid chunk size")
            if size == 0:
                break
            total += size
            if total > _MAX_BODY:
                raise _BadRequest(413, f"Request body larger than {_MAX_BODY} bytes")
            data = self.rfile.read(size)
            if len(data) != size or self.rfile.readline(_MAX_CHUNK_LINE + 1) not in (b"\r\n", b"\n"):
                return None
            chunks.append(data)
        while True:  # trailer fields, ignored
            line = self.rfile.readline(_MAX_CHUNK_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                break
        return b"".join(chunks)

    def _send(self, reply: _Reply, *, head_only: bool) -> None:
        status = reply.status
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {status} {phrase}"]
        names: set[str] = set()
        for name, value in reply.headers:
            lowered = name.lower()
            if lowered in _FRAMING:
                continue
            if not _valid_header(name, value):
                logger.warning("dropped a response header with an invalid name or value (%r)", name)
                continue
            names.add(lowered)
            lines.append(f"{name}: {value}")
        if "date" not in names:
            lines.append(f"Date: {_http_date()}")
        if "server" not in names:
            lines.append(f"Server: {_SERVER}")
        body = reply.body
        if status in _NO_BODY_STATUSES or 100 <= status < 200:
            body = b""
        else:
            lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        elif self.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        self.wfile.write(head if head_only else head + body)


def _valid_header(name: str, value: str) -> bool:
    return bool(name) and not any(c in name for c in ":\r\n\0 \t") and not any(c in value for c in "\r\n\0")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() joins the handler threads itself, after waking them
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.gateway = gateway
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._closing = False
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._run_request, args=(request, client_address), daemon=True,
            name=f"gateway-conn-{client_address[1] if isinstance(client_address, tuple) else ''}",
        )
        with self._conn_lock:
            self._handler_threads.add(thread)
        thread.start()

    def _run_request(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._handler_threads.discard(threading.current_thread())

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conn_lock:
            if not add:
                self._connections.discard(conn)
                return
            self._connections.add(conn)
            closing = self._closing
        if closing:
            _shutdown_socket(conn)

    def close_connections(self, timeout: float) -> None:
        """Wake every handler blocked on an idle keep-alive read, then join them all."""
        with self._conn_lock:
            self._closing = True
            connections = list(self._connections)
            threads = list(self._handler_threads)
        for conn in connections:
            _shutdown_socket(conn)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        leftover = sum(1 for t in threads if t.is_alive())
        if leftover:
            logger.warning("%d gateway connection thread(s) still busy after %.0f s", leftover, timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("unexpected error on a gateway connection")


def _shutdown_socket(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass



def _split_target(target: str) -> tuple[str, str]:
    """Raw path and raw query of a request target (origin or absolute form)."""
    if target.startswith(("http://", "https://")):
        split = urlsplit(target)
        return split.path or "/", split.query
    path, _, query = target.partition("?")
    return path, query


