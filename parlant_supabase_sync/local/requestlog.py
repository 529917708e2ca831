"""Thread-safe record of the HTTP requests the local gateway served.

Only the method, the path, the query string (credentials redacted) and the status are kept;
header values never reach the log, so API keys and JWTs cannot leak through it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Capture", "LoggedRequest", "RequestLog"]

#: How many entries a `RequestLog` keeps by default; older ones are dropped first so a
#: long-running `local up` does not grow without bound.
DEFAULT_MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class LoggedRequest:
    """One served request: `path` as received (e.g. `/rest/v1/docs`), `query` the raw query string."""

    method: str
    path: str
    query: str
    status: int


def _matches(entry: LoggedRequest, method: str | None, path_contains: str | None) -> bool:
    if method is not None and entry.method != method.upper():
        return False
    return path_contains is None or path_contains in entry.path


class Capture:
    """The requests recorded while a `RequestLog.capture()` block was open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def _add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[LoggedRequest]:
        """A copy of the captured requests, oldest first."""
        with self._lock:
            return list(self._entries)

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        """How many captured requests match `method` (any case) and contain `path_contains`."""
        with self._lock:
            return sum(1 for e in self._entries if _matches(e, method, path_contains))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self.entries())

    def __repr__(self) -> str:
        return f"<Capture {len(self)} requests>"


class RequestLog:
    """Thread-safe list of `LoggedRequest`, newest last; keeps at most `max_entries` (None: all)."""

    def __init__(self, max_entries: int | None = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError("max_entries must be at least 1 (or None for no limit)")
        self._lock = threading.Lock()
        self._entries: deque[LoggedRequest] = deque(maxlen=max_entries)
        self._captures: list[Capture] = []

    def record(self, method: str, path: str, query: str, status: int) -> LoggedRequest:
        """Append one request; the gateway calls this before the response leaves the server."""
        entry = LoggedRequest(method, path, query, status)
        with self._lock:
            self._entries.append(entry)
            for capture in self._captures:
                capture._add(entry)
        return entry

    def entries(self) -> list[LoggedRequest]:
        """A copy of the recorded requests, oldest first."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        """How many recorded requests match `method` (any case) and contain `path_contains`."""
        with self._lock:
            return sum(1 for e in self._entries if _matches(e, method, path_contains))

    @contextmanager
    def capture(self) -> Iterator[Capture]:
        """`with log.capture() as cap:` — `cap` holds only the requests recorded inside the block.

        The gateway records a request before sending its response, so every request a client
        completed inside the block is in `cap`.
        """
        cap = Capture()
        with self._lock:
            self._captures.append(cap)
        try:
            yield cap
        finally:
            with self._lock:
                self._captures.remove(cap)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"<RequestLog {len(self)} requests>"
