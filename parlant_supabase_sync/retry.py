"""Capped exponential backoff with jitter, for requests that are safe to repeat.

Retried: connection errors, HTTP 502/503/504 (PostgREST's PGRST000–PGRST003 are 503/504) and
2xx answers whose body is broken. The transport decides what is safe to repeat: reads, and
writes carrying a request id whose outcome the server records (a repeat returns that outcome).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import InvalidResponse, SupabaseSyncError, TransientError
from .settings import RetryPolicy

__all__ = ["backoff_delay", "call_with_retry", "is_retryable"]

T = TypeVar("T")

_RETRY_STATUSES = frozenset({502, 503, 504})
_RETRY_CODES = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003", "502", "503", "504"})


def is_retryable(error: BaseException) -> bool:
    """True for connection failures, 502/503/504 and 2xx answers with a broken body."""
    if isinstance(error, InvalidResponse):
        return True
    if not isinstance(error, TransientError):
        return False
    if error.status is None and error.code is None:
        return True  # a transport failure: no HTTP response at all
    return error.status in _RETRY_STATUSES or error.code in _RETRY_CODES


def backoff_delay(policy: RetryPolicy, attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): capped, with full jitter."""
    ceiling = min(policy.max_delay, policy.base_delay * (2**attempt))
    delay = float(ceiling)
    return delay * rng() if policy.jitter else delay


def call_with_retry(
    policy: RetryPolicy,
    send: Callable[[int], T],
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, SupabaseSyncError, float], None] | None = None,
    may_repeat: Callable[[SupabaseSyncError], bool] | None = None,
) -> T:
    """Call ``send(attempt)`` until it succeeds, fails for good, or attempts run out.

    ``send`` receives the 0-based attempt number. ``may_repeat(error)`` says whether the
    request may be sent again after ``error`` (default: yes, for every retryable error).
    """
    attempt = 0
    while True:
        try:
            return send(attempt)
        except SupabaseSyncError as error:
            if attempt + 1 >= policy.attempts or not is_retryable(error):
                raise
            if may_repeat is not None and not may_repeat(error):
                raise
            delay = backoff_delay(policy, attempt)
            if on_retry is not None:
                on_retry(attempt + 1, error, delay)
            sleep(delay)
            attempt += 1
