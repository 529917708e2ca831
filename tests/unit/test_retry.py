"""retry.py: which failures are retried, and the backoff schedule."""

from __future__ import annotations

import httpx
import pytest

from parlant_supabase_sync.errors import (
    DuplicateDocument,
    RequestError,
    SupabaseSyncError,
    TransientError,
)
from parlant_supabase_sync.retry import backoff_delay, call_with_retry, is_retryable
from parlant_supabase_sync.settings import RetryPolicy
from parlant_supabase_sync.wire import from_api_error, from_transport_error


def _transport(exc_type: type[httpx.TransportError]) -> SupabaseSyncError:
    return from_transport_error(exc_type("boom", request=httpx.Request("GET", "http://x/")))


@pytest.mark.parametrize(
    "error",
    [
        _transport(httpx.ConnectError),
        _transport(httpx.ReadError),
        _transport(httpx.RemoteProtocolError),
        from_api_error(None, 502),
        from_api_error(None, 503),
        from_api_error(None, 504),
        from_api_error({"code": "PGRST001", "message": "db down"}, 503),
        from_api_error({"code": "PGRST003", "message": "timed out"}, None),
    ],
)
def test_connection_errors_and_gateway_statuses_are_retried(error: SupabaseSyncError) -> None:
    assert is_retryable(error)


@pytest.mark.parametrize(
    "error",
    [
        from_api_error({"code": "23505", "message": "dup"}, 409),
        from_api_error({"code": "42501", "message": "denied"}, 403),
        from_api_error({"code": "40001", "message": "serialization"}, 500),
        from_api_error(None, 429),
        from_api_error(None, 500),
        RequestError("x"),
    ],
)
def test_other_failures_are_not_retried(error: SupabaseSyncError) -> None:
    assert not is_retryable(error)


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=1.0, jitter=False)
    assert [backoff_delay(policy, n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    jittered = RetryPolicy(attempts=10, base_delay=0.1, max_delay=1.0, jitter=True)
    assert backoff_delay(jittered, 3, rng=lambda: 0.5) == pytest.approx(0.4)
    assert 0 <= backoff_delay(jittered, 3) <= 0.8


def test_call_with_retry_stops_after_the_policy_attempts() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def send(attempt: int) -> None:
        calls.append(attempt)
        raise TransientError("down", status=503)

    with pytest.raises(TransientError):
        call_with_retry(RetryPolicy(attempts=3, jitter=False), send, sleep=sleeps.append)
    assert calls == [0, 1, 2]
    assert sleeps == [0.1, 0.2]


def test_call_with_retry_returns_the_first_success_and_passes_the_attempt() -> None:
    def send(attempt: int) -> int:
        if attempt < 2:
            raise TransientError("down", status=502)
        return attempt

    assert call_with_retry(RetryPolicy(attempts=5), send, sleep=lambda _: None) == 2


def test_non_retryable_errors_propagate_at_once() -> None:
    calls: list[int] = []

    def send(attempt: int) -> None:
        calls.append(attempt)
        raise DuplicateDocument("dup", code="23505", status=409)

    with pytest.raises(DuplicateDocument):
        call_with_retry(RetryPolicy(attempts=5), send, sleep=lambda _: None)
    assert calls == [0]
