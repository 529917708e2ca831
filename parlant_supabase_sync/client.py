"""The shared HTTP/1.1 ``httpx.Client`` and the ``SyncPostgrestClient`` built over it.

One ``httpx.Client`` serves every thread: HTTP/1.1 (httpcore's HTTP/2 is not thread-safe),
explicit timeouts, a pool at least as large as the worker count, no proxy variables from the
environment. The PostgREST client never owns it: nothing here calls ``auth()``, ``aclose()``
or uses it as a context manager (postgrest-py would close the shared client).
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
from collections.abc import Mapping
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
    "post_rpc",
    "record_statuses",
    "reset_status",
    "rpc_objects_supported",
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


@functools.lru_cache(maxsize=1)
def rpc_objects_supported() -> bool:
    """Whether the installed postgrest-py returns a JSON object or ``null`` RPC result as is.

    postgrest-py before 2.29 validates every response body as a list and turns an object or
    ``null`` into an error; probed once in memory (no request).
    """
    from postgrest.base_request_builder import APIResponse

    probe = httpx.Response(
        200,
        content=b'{"probe": 1}',
        request=httpx.Request("POST", "http://localhost/rpc/probe"),
    )
    try:
        data: object = APIResponse.from_http_request_response(probe).data
        return data == {"probe": 1}
    except Exception:  # noqa: BLE001 - any failure means "not supported"
        return False


def post_rpc(
    http_client: httpx.Client,
    settings: SupabaseSettings,
    function: str,
    body: Mapping[str, Any],
) -> httpx.Response:
    """``POST /rest/v1/rpc/<function>`` on the shared client, with the PostgREST client's
    headers; only for postgrest-py versions that cannot return an object (see above)."""
    headers = {
        **auth_headers(settings),
        "Accept-Profile": settings.db_schema,
        "Content-Profile": settings.db_schema,
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    return http_client.post(
        f"{settings.rest_url}/rpc/{function}",
        content=json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8"),
        headers=headers,
    )
