"""HTTP/1.1 framing for the fault proxy: read one request or response off a socket (head,
Content-Length or chunked body, close semantics) and close or reset sockets.

Only what the proxy needs to forward messages unchanged between the client and the gateway;
limits keep a broken peer from making it buffer without bound.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from typing import NamedTuple

__all__ = [
    "CAPTIVE_PORTAL",
    "HOP_BY_HOP",
    "JSON_GATEWAY_BODIES",
    "REASONS",
    "ConnectionClosed",
    "Message",
    "ProtocolError",
    "Reader",
    "close_quietly",
    "gateway_answer",
    "header",
    "read_request",
    "read_response",
    "reset",
    "status_of",
]

_MAX_LINE = 65536
_MAX_HEADERS = 200
_MAX_BODY = 256 * 1024 * 1024
_RECV = 65536


class Message(NamedTuple):
    start: str  # request line or status line
    headers: list[tuple[str, str]]
    body: bytes
    close: bool  # the sender asked to close (or framing needs it)


class ConnectionClosed(Exception):
    """The peer closed the connection cleanly between messages."""


class ProtocolError(Exception):
    """The peer sent something that is not HTTP/1.1 we can parse."""


class Reader:
    """Buffered reads from a socket whose timeout is already set."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self._sock.recv(_RECV)
        if not chunk:
            self.eof = True
            return False
        self._buffer += chunk
        return True

    def has_buffered(self) -> bool:
        return bool(self._buffer)

    def readline(self) -> bytes:
        while True:
            index = self._buffer.find(b"\n")
            if index >= 0:
                line = bytes(self._buffer[: index + 1])
                del self._buffer[: index + 1]
                return line
            if len(self._buffer) > _MAX_LINE:
                raise ProtocolError("line too long")
            if not self._fill():
                line = bytes(self._buffer)
                self._buffer.clear()
                return line

    def read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not self._fill():
                raise ProtocolError(f"connection closed with {size - len(self._buffer)} bytes unread")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read_to_close(self) -> bytes:
        while self._fill():
            if len(self._buffer) > _MAX_BODY:
                raise ProtocolError("body too large")
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    values = [value for key, value in headers if key.lower() == name]
    return ", ".join(values) if values else None


def _tokens(value: str | None) -> list[str]:
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


def _read_head(reader: Reader) -> tuple[str, list[tuple[str, str]]]:
    line = reader.readline()
    while line in (b"\r\n", b"\n"):  # tolerate blank lines between messages (RFC 9112 §2.2)
        line = reader.readline()
    if not line:
        raise ConnectionClosed
    if not line.endswith(b"\n"):
        raise ProtocolError("connection closed inside a start line")
    start = line.decode("latin-1").rstrip("\r\n")
    headers: list[tuple[str, str]] = []
    while True:
        raw = reader.readline()
        if not raw.endswith(b"\n"):
            raise ProtocolError("connection closed inside the header block")
        if raw in (b"\r\n", b"\n"):
            return start, headers
        if len(headers) >= _MAX_HEADERS:
            raise ProtocolError("too many headers")
        text = raw.decode("latin-1").rstrip("\r\n")
        name, sep, value = text.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"malformed header line {text[:80]!r}")
        headers.append((name, value.strip()))


def _read_chunked(reader: Reader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = reader.readline()
        if not line.endswith(b"\n"):
            raise ProtocolError("connection closed inside a chunk size line")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size < 0:
            raise ProtocolError("negative chunk size")
        if size == 0:
            while True:  # trailers, discarded
                trailer = reader.readline()
                if not trailer.endswith(b"\n"):
                    raise ProtocolError("connection closed inside the trailers")
                if trailer in (b"\r\n", b"\n"):
                    return b"".join(parts)
        total += size
        if total > _MAX_BODY:
            raise ProtocolError("body too large")
        parts.append(reader.read_exact(size))
        if reader.readline() not in (b"\r\n", b"\n"):
            raise ProtocolError("chunk not followed by CRLF")


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    values = {v.strip() for k, v in headers if k.lower() == "content-length"}
    if not values:
        return None
    if len(values) != 1:
        raise ProtocolError("conflicting Content-Length headers")
    text = values.pop()
    if not text.isdigit():
        raise ProtocolError(f"bad Content-Length {text[:20]!r}")
    length = int(text)
    if length > _MAX_BODY:
        raise ProtocolError("body too large")
    return length


def _wants_close(version: str, headers: list[tuple[str, str]]) -> bool:
    tokens = _tokens(header(headers, "connection"))
    if "close" in tokens:
        return True
    return version == "HTTP/1.0" and "keep-alive" not in tokens


def read_request(reader: Reader) -> Message:
    start, headers = _read_head(reader)
    parts = start.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ProtocolError(f"bad request line {start[:80]!r}")
    encodings = _tokens(header(headers, "transfer-encoding"))
    if encodings:
        if encodings != ["chunked"]:
            raise ProtocolError("unsupported transfer coding")
        body = _read_chunked(reader)
    else:
        length = _content_length(headers)
        body = reader.read_exact(length) if length else b""
    return Message(start, headers, body, _wants_close(parts[2], headers))


def status_of(start: str) -> int:
    parts = start.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {start[:80]!r}")
    return int(parts[1])


def read_response(reader: Reader, method: str) -> Message:
    while True:
        start, headers = _read_head(reader)
        status = status_of(start)
        if 100 <= status < 200 and status != 101:
            continue  # an interim answer (100 Continue, 103 Early Hints)
        break
    version = start.split(" ", 1)[0]
    close = _wants_close(version, headers)
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return Message(start, headers, b"", close)
    encodings = _tokens(header(headers, "transfer-encoding"))
    if encodings:
        if encodings[-1] != "chunked":
            return Message(start, headers, reader.read_to_close(), True)
        if encodings != ["chunked"]:
            raise ProtocolError("unsupported transfer coding")
        return Message(start, headers, _read_chunked(reader), close)
    length = _content_length(headers)
    if length is None:
        return Message(start, headers, reader.read_to_close(), True)
    return Message(start, headers, reader.read_exact(length), close)


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, so the peer gets a TCP RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def close_quietly(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


# ---- what the proxy answers itself

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "expect",
    }
)

JSON_GATEWAY_BODIES: dict[int, bytes] = {
    502: b'{"message":"An invalid response was received from the upstream server"}',
    503: b'{"message":"failure to get a peer from the ring-balancer"}',
    504: b'{"message":"The upstream server is timing out"}',
}
REASONS = {
    200: "OK",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def _nginx_page(status: int) -> bytes:
    title = f"{status} {REASONS[status]}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode("ascii")


def _cloudflare_page(status: int) -> bytes:
    return (
        "<!DOCTYPE html>\n<html lang=\"en-US\"><head><title>"
        f"supabase.co | {status}: {REASONS[status]}</title></head>\n"
        f"<body><div id=\"cf-error-details\"><h1>Error {status}</h1>"
        "<p>The web server reported a gateway error.</p>"
        "<p>Cloudflare Ray ID: 8a1b2c3d4e5f6a7b</p></div></body></html>\n"
    ).encode("ascii")


CAPTIVE_PORTAL = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in to the network</title></head>\n"
    b"<body><h1>Welcome</h1><p>Please accept the terms of use to continue.</p>"
    b'<form method="post" action="/login"><button>Accept</button></form></body></html>\n'
)


def gateway_answer(status: int, style: str) -> tuple[str, list[tuple[str, str]], bytes, str]:
    """(status line, extra headers, body, content type) of a gateway error page: Kong's JSON
    bodies (`style == "json"`), otherwise nginx's HTML page (Cloudflare's for 504)."""
    if style == "json":
        body = JSON_GATEWAY_BODIES[status]
        content_type = "application/json; charset=utf-8"
        extra = [("Server", "kong/3.0.2"), ("X-Kong-Response-Latency", "1")]
    else:
        body = _nginx_page(status) if status != 504 else _cloudflare_page(status)
        content_type = "text/html; charset=UTF-8"
        extra = [("Server", "nginx" if status != 504 else "cloudflare")]
    return f"HTTP/1.1 {status} {REASONS[status]}", extra, body, content_type
