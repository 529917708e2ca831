"""Raw-HTTP helpers shared by the PostgREST conformance suite (``test_conformance_*.py``).

The suite talks to the local stand-in exactly as a client talks to Supabase: HTTP requests under
``<url>/rest/v1`` with ``apikey`` + ``Authorization: Bearer`` headers. Queries can be given as a
raw string (sent as written, so a test controls ``+``/``%2B``/quotes byte for byte) or as
``(key, value)`` pairs (every reserved character percent-encoded, as httpx/postgrest-py do).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import psycopg

REST_PREFIX = "/rest/v1"
OBJECT_MEDIA_TYPE = "application/vnd.pgrst.object+json"

Query = str | Sequence[tuple[str, str]]


class _Unset:
    pass


UNSET: Any = _Unset()


def encode_query(query: Query) -> str:
    if isinstance(query, str):
        return query
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)


class Rest:
    """A tiny PostgREST client over one shared ``httpx.Client``.

    ``key`` goes to ``apikey``; ``bearer`` (default: the same key) to ``Authorization``;
    pass ``bearer=None`` to send no ``Authorization`` header.
    """

    def __init__(
        self,
        base_url: str,
        key: str | None,
        *,
        bearer: str | None = UNSET,
        client: httpx.Client | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base = base_url.rstrip("/") + REST_PREFIX
        self.headers: dict[str, str] = {}
        if key is not None:
            self.headers["apikey"] = key
        if bearer is UNSET:
            bearer = key
        if bearer is not None:
            self.headers["Authorization"] = f"Bearer {bearer}"
        self.headers.update(headers or {})
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=20.0)

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def with_auth(self, key: str | None, *, bearer: str | None = UNSET,
                  headers: Mapping[str, str] | None = None) -> Rest:
        """Same server and connection pool, other credentials."""
        return Rest(self.base[: -len(REST_PREFIX)], key, bearer=bearer, client=self.client,
                    headers=headers)

    def url(self, path: str, query: Query = ()) -> str:
        qs = encode_query(query)
        return self.base + path + (f"?{qs}" if qs else "")

    def request(
        self,
        method: str,
        path: str,
        query: Query = (),
        *,
        json_body: Any = UNSET,
        content: bytes | str | None = None,
        headers: Mapping[str, str | None] | None = None,
        prefer: str | None = None,
    ) -> httpx.Response:
        hdrs = dict(self.headers)
        if prefer is not None:
            hdrs["Prefer"] = prefer
        if json_body is not UNSET:
            content = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            # Let a test replace a default header regardless of the spelling's case.
            for existing in [h for h in hdrs if h.lower() == name.lower()]:
                del hdrs[existing]
            if value is not None:  # None removes the header
                hdrs[name] = value
        return self.client.request(method, self.url(path, query), content=content, headers=hdrs)

    def get(self, path: str, query: Query = (), **kw: Any) -> httpx.Response:
        return self.request("GET", path, query, **kw)

    def head(self, path: str, query: Query = (), **kw: Any) -> httpx.Response:
        return self.request("HEAD", path, query, **kw)

    def post(self, path: str, query: Query = (), **kw: Any) -> httpx.Response:
        return self.request("POST", path, query, **kw)

    def patch(self, path: str, query: Query = (), **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, query, **kw)

    def put(self, path: str, query: Query = (), **kw: Any) -> httpx.Response:
        return self.request("PUT", path, query, **kw)

    def delete(self, path: str, query: Query = (), **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, query, **kw)


# --- response checks -------------------------------------------------------------------------


def ok_json(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text[:300]}"
    return resp.json()


def ids(resp: httpx.Response, status: int = 200) -> list[int]:
    """Sorted ``id`` values of a JSON array response."""
    return sorted(row["id"] for row in ok_json(resp, status))


def ordered_ids(resp: httpx.Response, status: int = 200) -> list[int]:
    return [row["id"] for row in ok_json(resp, status)]


def assert_error(
    resp: httpx.Response,
    status: int,
    code: str,
    *,
    message: str | None = None,
    message_startswith: str | None = None,
    message_contains: str | None = None,
    details: Any = UNSET,
    details_contains: str | None = None,
    hint: Any = UNSET,
) -> dict[str, Any]:
    """Assert a PostgREST error response (postgrest-protocol.md §12.1) and return its body."""
    assert resp.status_code == status, (
        f"expected HTTP {status} {code}, got {resp.status_code}: {resp.text[:300]}"
    )
    ctype = resp.headers.get("content-type", "")
    assert ctype.startswith("application/json"), f"error content-type {ctype!r}: {resp.text}"
    body = resp.json()
    assert isinstance(body, dict), body
    assert {"code", "message", "details", "hint"} <= set(body), body
    assert body["code"] == code, f"expected code {code}, got {body}"
    if message is not None:
        assert body["message"] == message, body
    if message_startswith is not None:
        assert str(body["message"]).startswith(message_startswith), body
    if message_contains is not None:
        assert message_contains in str(body["message"]), body
    if details is not UNSET:
        assert body["details"] == details, body
    if details_contains is not None:
        assert details_contains in str(body["details"]), body
    if hint is not UNSET:
        assert body["hint"] == hint, body
    return body


def content_range(resp: httpx.Response) -> str | None:
    value = resp.headers.get("content-range")
    return None if value is None else str(value)


def prefs_applied(resp: httpx.Response) -> list[str]:
    raw = resp.headers.get("preference-applied")
    if raw is None:
        return []
    return [p.strip() for p in raw.split(",") if p.strip()]


def assert_empty_body(resp: httpx.Response, status: int) -> None:
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    assert resp.content == b"", resp.text
    assert "content-type" not in resp.headers, dict(resp.headers)
    if status == 204:
        # RFC 9110 §8.6: no Content-Length in a 204; PostgREST's specs check it is absent.
        assert "content-length" not in resp.headers, dict(resp.headers)


# --- JWTs --------------------------------------------------------------------------------------


def mint_jwt(secret: str, claims: Mapping[str, Any], *, lifetime: int | None = 3600,
             algorithm: str = "HS256") -> str:
    """HS256 token; ``iat``/``exp`` added unless present in ``claims`` or lifetime is None."""
    payload = dict(claims)
    now = int(time.time())
    if lifetime is not None:
        payload.setdefault("iat", now)
        payload.setdefault("exp", now + lifetime)
    return jwt.encode(payload, secret, algorithm=algorithm)


def user_jwt(secret: str, sub: str, role: str = "authenticated", **extra: Any) -> str:
    return mint_jwt(secret, {"sub": sub, "role": role, "aud": "authenticated", **extra})


# --- database side ----------------------------------------------------------------------------


def sql_rows(database_url: str, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """Read the database directly (superuser), bypassing the gateway."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return list(cur.fetchall()) if cur.description else []


def sql_ids(database_url: str, table: str, where: str = "true") -> list[int]:
    return [r[0] for r in sql_rows(database_url, f'select id from public."{table}" where {where} order by id')]


def _dollar(text: str) -> str:
    tag = "$conf$"
    assert tag not in text
    return f"{tag}{text}{tag}"


def supabase_grants(table: str) -> str:
    """The privileges Supabase gives every new public table (explicit, so the suite does not
    depend on default privileges being set up for the role that runs ``execute_sql``)."""
    return f'grant all on table public."{table}" to anon, authenticated, service_role;'


def reload_schema_sql() -> str:
    return "notify pgrst, 'reload schema';"


def reset_rows(stack: Any, table: str, rows: Sequence[Mapping[str, Any]], *, sequence_start: int = 1000) -> None:
    """Replace the table's rows with ``rows`` (all with the same keys), via SQL as superuser."""
    sql = [f'truncate public."{table}" restart identity cascade;']
    if rows:
        cols = list(rows[0])
        for row in rows:
            assert list(row) == cols, "reset_rows needs identical keys in every row"
        collist = ", ".join(f'"{c}"' for c in cols)
        sql.append(
            f'insert into public."{table}" ({collist}) select {collist} from '
            f'jsonb_populate_recordset(null::public."{table}", {_dollar(json.dumps(list(rows)))}::jsonb);'
        )
    sql.append(
        f"select setval(pg_get_serial_sequence('public.\"{table}\"', 'id'), {sequence_start}) "
        f"where pg_get_serial_sequence('public.\"{table}\"', 'id') is not null;"
    )
    stack.execute_sql("\n".join(sql))


def wait_until_visible(rest: Rest, path: str, *, timeout: float = 10.0, method: str = "GET",
                       json_body: Any = UNSET) -> None:
    """Wait until the gateway's schema cache knows ``path`` (PGRST205/PGRST202 go away)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = rest.request(method, path, "limit=0" if method == "GET" else (), json_body=json_body)
        code = None
        if resp.status_code in (404, 300):
            try:
                code = resp.json().get("code")
            except ValueError:
                code = None
        if code not in ("PGRST205", "PGRST202"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never became visible through the gateway: {resp.text}")
        time.sleep(0.05)


def rows_by_id(resp: httpx.Response, status: int = 200) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in ok_json(resp, status)}


def all_ids(n: int) -> list[int]:
    return list(range(1, n + 1))


def without(ids_: Iterable[int], *exclude: int) -> list[int]:
    return sorted(set(ids_) - set(exclude))


def raw_request(base_url: str, method: str, target: str, headers: Sequence[tuple[str, str]],
                body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request over a plain socket, for header values httpx refuses to send
    (e.g. ``Authorization: Bearer `` with a trailing space)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"{method} {REST_PREFIX}{target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
             f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    resp_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        resp_headers[name.strip().lower()] = value.strip()
    return status, resp_headers, payload
