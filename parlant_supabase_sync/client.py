"""The shared HTTP/1.1 ``httpx.Client`` and the ``SyncPostgrestClient`` built over it.

One ``httpx.Client`` serves every thread: HTTP/1.1 (httpcore's HTTP/2 is not thread-safe),
explicit timeouts, a pool at least as large as the worker count, no proxy variables from the
environment. The PostgREST client never owns it: nothing here calls ``auth()``, ``aclose()``
or uses it as a context manager (postgrest-py would close the shared client).
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import httpx
from postgrest import SyncPostgrestClient

from . import __version__
from .settings import SupabaseSettings, key_kind

__all__ = [
    "USER_AGENT",
    "auth_headers",
    "build_http_client",
    "build_postgrest_client",
    "last_status",
    "record_statuses",
    "reset_status",
]

USER_AGENT = f"parlant-supabase-sync/{__version__} (python-httpx)"

_status = threading.local()


def _record(response: httpx.Response) -> None:
    _status.value = response.status_code


def last_status() -> int | None:
    """The HTTP status of the last response this thread received (postgrest-py drops it)."""
    value = getattr(_status, "value", None)
    return value if isinstance(value, int) else None


def reset_status() -> None:
    _status.value = None


def record_statuses(client: httpx.Client) -> None:
    """Add the status recorder to ``client``'s response hooks (once)."""
    hooks = client.event_hooks
    responses = list(hooks.get("response", []))
    if _record not in responses:
        responses.append(_record)
        client.event_hooks = {**hooks, "response": responses}


def build_http_client(settings: SupabaseSettings) -> httpx.Client:
    """The HTTP/1.1 client every request of one database goes through."""
    size = max(settings.http_pool_size, settings.max_workers)
    client = httpx.Client(
        http1=True,
        http2=False,
        timeout=settings.timeouts.as_httpx(),
        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
        trust_env=False,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )
    record_statuses(client)
    return client


def auth_headers(settings: SupabaseSettings) -> dict[str, str]:
    """``apikey`` for every key; ``Authorization: Bearer`` only for legacy JWT keys.

    New ``sb_…`` keys are not JWTs: the gateway turns them into one, and sending them as a
    bearer token breaks some self-hosted stacks (shared/supabase-keys.md §4).
    """
    key = settings.key.get_secret_value()
    headers = {"apikey": key}
    if key_kind(key) == "legacy_jwt":
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _supports_retry_flag() -> bool:
    try:
        parameters = inspect.signature(SyncPostgrestClient.__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover - C-implemented or odd wrappers
        return False
    return "retry_enabled" in parameters


def build_postgrest_client(
    settings: SupabaseSettings, http_client: httpx.Client
) -> SyncPostgrestClient:
    """A PostgREST client for ``settings`` over the shared ``http_client``.

    Built-in retries are turned off (``retry_enabled=False`` where supported): they sleep
    1, 2 and 4 seconds in the calling thread; our own policy in :mod:`.retry` applies instead.
    """
    kwargs: dict[str, Any] = {
        "schema": settings.db_schema,
        "headers": auth_headers(settings),
        "http_client": http_client,
    }
    if _supports_retry_flag():
        kwargs["retry_enabled"] = False
    return SyncPostgrestClient(settings.rest_url, **kwargs)


def disable_builder_retry(builder: Any) -> Any:
    """Turn off postgrest-py's own GET/HEAD retries on one builder (postgrest 2.29–2.33).

    On 2.34+ the client-level flag already did it; before 2.29 there are no retries.
    """
    if getattr(builder, "request", None) is not None and hasattr(builder.request, "retry_enabled"):
        builder.request.retry_enabled = False
    return builder
