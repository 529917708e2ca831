"""Capped exponential backoff with jitter, for requests that are safe to repeat.

Only failures that say nothing reached a result are retried: connection errors and HTTP
502/503/504 (PostgREST's PGRST000–PGRST003 are 503/504). The caller decides what is safe to
repeat: reads, writes pinned to one id that are idempotent, and writes whose effect the caller
checks afterwards (an insert that meets its own earlier attempt).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import SupabaseSyncError, TransientError
from .settings import RetryPolicy

__all__ = ["backoff_delay", "call_with_retry", "is_retryable"]

T = TypeVar("T")

_RETRY_STATUSES = frozenset({502, 503, 504})
_RETRY_CODES = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003", "502", "503", "504"})


def is_retryable(error: BaseException) -> bool:
    """True for connection failures and 502/503/504 responses."""
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
) -> T:
    """Call ``send(attempt)`` until it succeeds, fails for good, or attempts run out.

    ``send`` receives the 0-based attempt number so it can check the effect of an earlier
    attempt (``attempt > 0`` means an earlier one may have been applied).
    """
    attempt = 0
    while True:
        try:
            return send(attempt)
        except SupabaseSyncError as error:
            if attempt + 1 >= policy.attempts or not is_retryable(error):
                raise
            delay = backoff_delay(policy, attempt)
            if on_retry is not None:
                on_retry(attempt + 1, error, delay)
            sleep(delay)
            attempt += 1
