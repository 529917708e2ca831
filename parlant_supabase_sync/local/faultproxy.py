"""A fault-injecting HTTP/1.1 reverse proxy on loopback, for chaos tests of the adapter.

``FaultProxy`` sits between a client (the adapter's httpx client) and the stand-in's gateway,
both on 127.0.0.1. It keeps connections alive on both sides, parses every request and response
(``Content-Length``, ``chunked``, bodiless ``HEAD``/1xx/204/304 answers, read-to-close bodies)
and forwards them re-framed with ``Content-Length``. Per request it may inject one fault:

=================  ===========================================================================
``reset_before``   reset the client connection (``SO_LINGER`` 0 → RST) before forwarding
                   anything: nothing reached the server
``reset_after``    forward, read the whole upstream answer (the server committed), then reset
                   the client connection without answering
``hold``           forward, read the answer, keep it for ``hold_seconds`` (longer than the
                   client's read timeout), then close the connection without answering
``gateway_502``    forward (the server may have committed), answer 502 with a gateway body
``gateway_503``    answer 503 with a gateway body without forwarding
``gateway_504``    forward (the server may have committed), answer 504 with a gateway body
``cut_body``       forward, send the head with the real ``Content-Length`` but only part of the
                   body, then close (an empty body: only part of the head)
``framed_cut``     forward, answer with the same status and the body truncated, its
                   ``Content-Length`` adjusted (correctly framed, no longer valid JSON)
``html_200``       forward, answer 200 with an HTML page (captive portal / proxy page)
=================  ===========================================================================

Gateway bodies are JSON as Kong writes them (``{"message": "..."}``) or HTML pages as nginx and
Cloudflare serve them, chosen per fault (``gateway_body``). Faults come from a script (the next
matching request(s), :meth:`FaultProxy.script`) or at random with probability ``rate`` and
relative ``weights`` from ``random.Random(seed)``.

Bounded: at most ``max_faults`` faults and ``max_connections`` client connections; every
socket operation has a timeout; the proxy stops by itself ``deadline`` seconds after
:meth:`FaultProxy.start`. It is thread-safe and a context manager; :meth:`FaultProxy.stop`
closes every socket and joins every thread it started.
"""

from __future__ import annotations

import random
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from typing_extensions import Self

from .faultproxy_http import (
    CAPTIVE_PORTAL,
    HOP_BY_HOP,
    ConnectionClosed,
    Message,
    ProtocolError,
    Reader,
    close_quietly,
    gateway_answer,
    header,
    read_request,
    read_response,
    reset,
    status_of,
)

__all__ = [
    "FAULT_KINDS",
    "BodyStyle",
    "FaultEvent",
    "FaultKind",
    "FaultProxy",
    "FaultProxyError",
]

FaultKind = Literal[
    "reset_before",
    "reset_after",
    "hold",
    "gateway_502",
    "gateway_503",
    "gateway_504",
    "cut_body",
    "framed_cut",
    "html_200",
]
BodyStyle = Literal["json", "html"]

FAULT_KINDS: tuple[FaultKind, ...] = (
    "reset_before",
    "reset_after",
    "hold",
    "gateway_502",
    "gateway_503",
    "gateway_504",
    "cut_body",
    "framed_cut",
    "html_200",
)

LOOPBACK = "127.0.0.1"

class FaultProxyError(RuntimeError):
    """The proxy was misconfigured (not loopback, bad weights) or cannot start."""


class FaultEvent(NamedTuple):
    """One injected fault: the request's method and path (no query) and the fault kind."""

    method: str
    path: str
    kind: str


@dataclass
class _Scripted:
    kind: FaultKind
    method: str | None
    path_contains: str | None
    remaining: int
    body: BodyStyle | None
    skip: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass
class _Fault:
    kind: FaultKind
    body: BodyStyle


def _parse_upstream(upstream: str) -> tuple[str, int]:
    parts = urlsplit(upstream)
    if parts.scheme != "http":
        raise FaultProxyError(f"upstream must be an http:// URL on {LOOPBACK}, got {upstream!r}")
    host = parts.hostname
    if host not in (LOOPBACK, "localhost"):
        raise FaultProxyError(f"upstream must be on {LOOPBACK} (loopback only), got {host!r}")
    if parts.port is None:
        raise FaultProxyError(f"upstream {upstream!r} has no port")
    if parts.path.strip("/"):
        raise FaultProxyError(f"upstream {upstream!r} must not have a path")
    return LOOPBACK, parts.port


class FaultProxy:
    """A seeded, bounded fault-injecting HTTP/1.1 proxy from ``127.0.0.1:<port>`` to ``upstream``.

    ``rate`` is the probability that a request (matching ``match(method, path)`` when given)
    gets a random fault; ``weights`` gives each kind's relative weight (default: all kinds
    equally; kinds not named never occur). ``gateway_body`` picks the body of gateway faults:
    ``"json"``, ``"html"`` or ``"mixed"`` (each fault draws one). Scripted faults
    (:meth:`script`) come first and ignore ``rate`` and ``match``. Faults stop after
    ``max_faults``; the proxy stops by itself ``deadline`` seconds after :meth:`start`.
    """

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        rate: float = 0.0,
        weights: Mapping[str, float] | None = None,
        max_faults: int = 1000,
        hold_seconds: float = 2.0,
        gateway_body: Literal["json", "html", "mixed"] = "mixed",
        match: Callable[[str, str], bool] | None = None,
        io_timeout: float = 10.0,
        idle_timeout: float = 30.0,
        deadline: float = 600.0,
        max_connections: int = 64,
    ) -> None:
        self._upstream = _parse_upstream(upstream)
        for name, value in (
            ("hold_seconds", hold_seconds),
            ("io_timeout", io_timeout),
            ("idle_timeout", idle_timeout),
            ("deadline", deadline),
        ):
            if not value > 0:
                raise FaultProxyError(f"{name} must be > 0, got {value!r}")
        if max_faults < 0 or max_connections < 1:
            raise FaultProxyError("max_faults must be >= 0 and max_connections >= 1")
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rate = 0.0
        self._kinds: list[FaultKind] = list(FAULT_KINDS)
        self._weights: list[float] = [1.0] * len(FAULT_KINDS)
        self.set_rate(rate, weights)
        self._max_faults = max_faults
        self._hold_seconds = hold_seconds
        self._gateway_body = gateway_body
        self._match = match
        self._io_timeout = io_timeout
        self._idle_timeout = idle_timeout
        self._deadline_seconds = deadline
        self._max_connections = max_connections
        self._script: list[_Scripted] = []
        self._counters: dict[str, int] = {kind: 0 for kind in FAULT_KINDS}
        self._log: list[FaultEvent] = []
        self._requests = 0
        self._connections_accepted = 0
        self._connections_refused = 0
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._threads: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()
        self._deadline_at = 0.0
        self._port = 0

    # configuration ------------------------------------------------------------------------

    def set_rate(self, rate: float, weights: Mapping[str, float] | None = None) -> None:
        """Change the random fault probability (0 ≤ rate ≤ 1) and, if given, the kind weights."""
        if not 0.0 <= rate <= 1.0:
            raise FaultProxyError(f"rate must be between 0 and 1, got {rate!r}")
        kinds: list[FaultKind] = list(FAULT_KINDS)
        values = [1.0] * len(kinds)
        if weights is not None:
            unknown = set(weights) - set(FAULT_KINDS)
            if unknown:
                raise FaultProxyError(f"unknown fault kind(s) {sorted(unknown)}; use {FAULT_KINDS}")
            kinds = [kind for kind in FAULT_KINDS if weights.get(kind, 0.0) > 0]
            values = [float(weights[kind]) for kind in kinds]
            if any(v < 0 for v in weights.values()):
                raise FaultProxyError("weights must be >= 0")
            if rate > 0 and not kinds:
                raise FaultProxyError("a positive rate needs at least one positive weight")
        with self._lock:
            self._rate = rate
            self._kinds = kinds
            self._weights = values

    def script(
        self,
        kind: FaultKind,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
        body: BodyStyle | None = None,
        after: int = 0,
    ) -> None:
        """Inject ``kind`` into the next ``times`` requests matching ``method`` and
        ``path_contains`` (a substring of the path without its query; None matches any),
        after letting ``after`` matching requests through. ``body`` picks the gateway body."""
        if kind not in FAULT_KINDS:
            raise FaultProxyError(f"unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        if times < 1 or after < 0:
            raise FaultProxyError("times must be >= 1 and after >= 0")
        with self._lock:
            self._script.append(_Scripted(kind, method, path_contains, times, body, after))

    def clear_script(self) -> None:
        with self._lock:
            self._script.clear()

    # figures ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self._port:
            raise FaultProxyError("the proxy is not started")
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def counters(self) -> dict[str, int]:
        """Faults injected so far, per kind (every kind present, zeros included)."""
        with self._lock:
            return dict(self._counters)

    @property
    def log(self) -> list[FaultEvent]:
        """Every injected fault in order: (method, path, kind)."""
        with self._lock:
            return list(self._log)

    @property
    def faults(self) -> int:
        with self._lock:
            return len(self._log)

    @property
    def requests(self) -> int:
        """Requests received from clients (faulted or not)."""
        with self._lock:
            return self._requests

    @property
    def connections(self) -> int:
        """Client connections accepted so far."""
        with self._lock:
            return self._connections_accepted

    @property
    def running(self) -> bool:
        thread = self._accept_thread
        return thread is not None and thread.is_alive() and not self._stopping.is_set()

    def reset_figures(self) -> None:
        """Zero the counters and empty the log (the seed's sequence continues)."""
        with self._lock:
            self._counters = {kind: 0 for kind in FAULT_KINDS}
            self._log.clear()
            self._requests = 0

    # life cycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self._listener is not None:
            raise FaultProxyError("the proxy was already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOOPBACK, 0))
            listener.listen(128)
            listener.settimeout(0.1)
        except OSError as exc:
            listener.close()
            raise FaultProxyError(f"cannot listen on {LOOPBACK}: {exc}") from exc
        self._listener = listener
        self._port = int(listener.getsockname()[1])
        self._deadline_at = time.monotonic() + self._deadline_seconds
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"faultproxy-accept-{self._port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close every connection and join every thread (idempotent)."""
        self._stopping.set()
        listener = self._listener
        if listener is not None:
            close_quietly(listener)
        thread = self._accept_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._close_all(timeout)

    def _close_all(self, timeout: float) -> None:
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            close_quietly(sock)
        end = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, end - time.monotonic()))

    def __enter__(self) -> Self:
        if self._listener is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{LOOPBACK}:{self._port}" if self._port else "not started"
        return f"FaultProxy({where} → {self._upstream[0]}:{self._upstream[1]}, faults={self.faults})"

    # serving ------------------------------------------------------------------------------

    def _expired(self) -> bool:
        return self._stopping.is_set() or time.monotonic() >= self._deadline_at

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        try:
            while not self._expired():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    break
                with self._lock:
                    self._threads = {t for t in self._threads if t.is_alive()}
                    full = len(self._threads) >= self._max_connections
                    if full:
                        self._connections_refused += 1
                    else:
                        self._connections_accepted += 1
                        self._sockets.add(client)
                if full:
                    close_quietly(client)
                    continue
                thread = threading.Thread(
                    target=self._serve, args=(client,), name=f"faultproxy-conn-{self._port}", daemon=True
                )
                with self._lock:
                    self._threads.add(thread)
                thread.start()
        finally:
            # The deadline (or stop()) ends the proxy: nothing is left running.
            self._stopping.set()
            close_quietly(listener)
            if threading.current_thread() is self._accept_thread:
                self._close_all(self._io_timeout)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.discard(sock)

    def _choose(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            self._requests += 1
            if len(self._log) >= self._max_faults:
                return None
            chosen: FaultKind | None = None
            body: BodyStyle | None = None
            for entry in self._script:
                if entry.matches(method, path):
                    if entry.skip > 0:
                        entry.skip -= 1
                        continue
                    chosen, body = entry.kind, entry.body
                    entry.remaining -= 1
                    if entry.remaining <= 0:
                        self._script.remove(entry)
                    break
            eligible = (
                chosen is None
                and self._rate > 0
                and bool(self._kinds)
                and (self._match is None or self._match(method, path))
            )
            # One draw per eligible request keeps the sequence a function of the seed.
            if eligible and self._rng.random() < self._rate:
                chosen = self._rng.choices(self._kinds, self._weights)[0]
            if chosen is None:
                return None
            if body is None:
                if self._gateway_body == "mixed":
                    body = "json" if self._rng.random() < 0.5 else "html"
                else:
                    body = self._gateway_body
            self._counters[chosen] += 1
            self._log.append(FaultEvent(method, path, chosen))
            return _Fault(chosen, body)

    def _connect_upstream(self) -> tuple[socket.socket, Reader]:
        sock = socket.create_connection(self._upstream, timeout=self._io_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._track(sock)
        return sock, Reader(sock)

    @staticmethod
    def _stale(sock: socket.socket, reader: Reader) -> bool:
        """True when an idle upstream connection was closed (or sent something unasked)."""
        if reader.eof or reader.has_buffered():
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        upstream_reader: Reader | None = None
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = Reader(client)
            while not self._expired():
                client.settimeout(min(self._idle_timeout, max(0.01, self._deadline_at - time.monotonic())))
                try:
                    request = read_request(reader)
                except (TimeoutError, ConnectionClosed):
                    return
                client.settimeout(self._io_timeout)
                method, target, _version = request.start.split(" ")
                path = target.split("?", 1)[0]
                fault = self._choose(method, path)
                if fault is not None and fault.kind == "reset_before":
                    reset(client)
                    return
                if fault is not None and fault.kind == "gateway_503":
                    self._send_gateway(client, 503, fault.body, close=request.close)
                    if request.close:
                        return
                    continue
                if upstream is not None and upstream_reader is not None and self._stale(upstream, upstream_reader):
                    self._untrack(upstream)
                    close_quietly(upstream)
                    upstream = upstream_reader = None
                if upstream is None or upstream_reader is None:
                    upstream, upstream_reader = self._connect_upstream()
                upstream.sendall(self._forward_head(request) + request.body)
                response = read_response(upstream_reader, method)
                if response.close:
                    self._untrack(upstream)
                    close_quietly(upstream)
                    upstream = upstream_reader = None
                if not self._answer(client, request, response, fault):
                    return
        except (OSError, ProtocolError, ConnectionClosed, ValueError):
            return  # the upstream (or the client) went away mid-exchange: close both ends
        finally:
            self._untrack(upstream)
            close_quietly(upstream)
            self._untrack(client)
            close_quietly(client)

    def _forward_head(self, request: Message) -> bytes:
        method, target, _ = request.start.split(" ")
        lines = [f"{method} {target} HTTP/1.1"]
        host, port = self._upstream
        lines.append(f"Host: {host}:{port}")
        for name, value in request.headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP or lowered == "host":
                continue
            lines.append(f"{name}: {value}")
        if request.body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(request.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @staticmethod
    def _response_head(
        start: str,
        headers: Iterable[tuple[str, str]],
        length: int | None,
        close: bool,
        content_type: str | None = None,
    ) -> bytes:
        version, _, rest = start.partition(" ")
        lines = [f"HTTP/1.1 {rest}" if version.startswith("HTTP/1.") else start]
        for name, value in headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP:
                continue
            if content_type is not None and lowered in ("content-type", "content-range", "preference-applied", "location"):
                continue
            lines.append(f"{name}: {value}")
        if content_type is not None:
            lines.append(f"Content-Type: {content_type}")
        if length is not None:
            lines.append(f"Content-Length: {length}")
        if close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_gateway(self, client: socket.socket, status: int, style: BodyStyle, *, close: bool) -> None:
        start, extra, body, content_type = gateway_answer(status, style)
        client.sendall(self._response_head(start, extra, len(body), close, content_type) + body)

    def _answer(
        self, client: socket.socket, request: Message, response: Message, fault: _Fault | None
    ) -> bool:
        """Send the (possibly faulted) answer; False when the client connection must end."""
        method = request.start.split(" ", 1)[0]
        status = status_of(response.start)
        bodiless = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        keep = not request.close
        if fault is None:
            length = None if bodiless else len(response.body)
            headers = response.headers
            if bodiless:
                # HEAD keeps the upstream's Content-Length (the GET body's size).
                headers = [
                    (k, v) for k, v in response.headers if k.lower() != "content-length"
                ]
                if method == "HEAD":
                    cl = header(response.headers, "content-length")
                    if cl is not None:
                        headers.append(("Content-Length", cl))
            client.sendall(self._response_head(response.start, headers, length, not keep) + response.body)
            return keep
        kind = fault.kind
        if kind == "reset_after":
            reset(client)
            return False
        if kind == "hold":
            self._stopping.wait(self._hold_seconds)
            return False
        if kind in ("gateway_502", "gateway_504"):
            self._send_gateway(client, 502 if kind == "gateway_502" else 504, fault.body, close=not keep)
            return keep
        if kind == "html_200":
            head = self._response_head("HTTP/1.1 200 OK", [("Server", "nginx")], len(CAPTIVE_PORTAL), not keep, "text/html; charset=utf-8")
            client.sendall(head + CAPTIVE_PORTAL)
            return keep
        body = b"" if bodiless else response.body
        if kind == "cut_body":
            head = self._response_head(response.start, response.headers, None if bodiless else len(body), True)
            if body:
                client.sendall(head + body[: len(body) // 2])
            else:
                client.sendall(head[: max(1, len(head) // 2)])
            return False
        # framed_cut: the same status, a shorter body framed by its own Content-Length.
        cut = body[: len(body) // 2] if body else body
        client.sendall(
            self._response_head(response.start, response.headers, None if bodiless else len(cut), not keep) + cut
        )
        return keep
