"""The HTTP front of the local Supabase stand-in.

One `Gateway` is what a Supabase project's API gateway plus PostgREST's request entry are:

* an HTTP/1.1 keep-alive server (stdlib `ThreadingHTTPServer`, one daemon thread per
  connection, `TCP_NODELAY`, each response written with a single send);
* routing: only `/rest/v1` and paths below it are PostgREST; anything else gets the gateway's
  404 `{"message":"no Route matched with those values"}` without any key check;
* the Supabase API-key layer of shared/supabase-keys.md §5 (hosted behaviour by default,
  self-hosted Kong's overwrite of any `Bearer sb_…` with `kong_mode=True`);
* PostgREST's JWT layer (postgrest-protocol.md §10.1): HS256 with the project's JWT secret,
  30 s clock skew, the exact PGRST301/302/303 bodies and `WWW-Authenticate` headers;
* a `psycopg_pool.ConnectionPool` of the `authenticator` role, and for each request one call
  of `engine.execute(conn, ApiRequest, EngineConfig)` whose `ApiResponse` goes out untouched.

Keys and JWTs never reach a log line, an exception message or the request log.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email.utils
import hashlib
import hmac
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import psycopg
import psycopg_pool
from typing_extensions import Self

from .engine import ApiRequest, ApiResponse, EngineConfig
from .errors import PgrstError, from_pg_error
from .keys import ApiKeys, mint_role_jwt
from .requestlog import RequestLog
from .schema_listener import SchemaCache, SchemaCacheError

__all__ = [
    "REST_PREFIX",
    "ApiKeys",
    "Executor",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
]

logger = logging.getLogger(__name__)

REST_PREFIX = "/rest/v1"

#: `engine.execute`'s signature; `Gateway(executor=...)` accepts any function of this shape.
Executor = Callable[["psycopg.Connection[Any]", ApiRequest, EngineConfig], ApiResponse]

_JSON = "application/json; charset=utf-8"
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
# Minted role JWTs live this long; one is reused until half of that has passed.
_MINTED_LIFETIME = 300.0
_CLOCK_SKEW = 30
_JWT_CACHE_SIZE = 1000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
# Headers the gateway itself sets on every response; an executor's copies are dropped.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
_NO_BODY_STATUSES = frozenset({204, 304})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# Haskell's `isSpace` on a byte, which PostgREST's bearer extraction splits on.
_BEARER_SPACE = " \t\n\r\x0b\x0c\xa0"


class GatewayError(RuntimeError):
    """The gateway could not start (database unreachable, port taken, bad configuration)."""


@dataclass
class GatewayConfig:
    """Everything a `Gateway` needs; `repr` hides the secret and the keys."""

    database_url: str  # DSN of the `authenticator` login role
    jwt_secret: str = field(repr=False)
    api_keys: ApiKeys = field(repr=False)
    engine: EngineConfig = field(default_factory=EngineConfig)
    legacy_keys_enabled: bool = True
    # Self-hosted Kong/Envoy replace any `Bearer sb_…`; hosted passes an unequal one through.
    kong_mode: bool = False
    pool_size: int = 10
    # PostgREST's db-pool-acquisition-timeout: how long a request waits for a connection.
    pool_timeout: float = 10.0
    # Longest request line (with its line break) before 414; None: no limit.
    max_request_line: int | None = DEFAULT_MAX_REQUEST_LINE
    # Body of that 414: "kong" (Supabase's gateway, text/plain) or "nginx" (bare nginx's HTML).
    uri_too_long: str = "kong"
    # Schema cache: reload on `NOTIFY pgrst` (PostgREST's db-channel-enabled). False: the
    # engine reads the catalog on every request instead (no cache at all).
    schema_cache: bool = True

    def __repr__(self) -> str:
        return (
            f"GatewayConfig(database_url={_hide_password(self.database_url)!r}, engine={self.engine!r}, "
            f"legacy_keys_enabled={self.legacy_keys_enabled}, kong_mode={self.kong_mode}, "
            f"pool_size={self.pool_size}, pool_timeout={self.pool_timeout}, "
            f"max_request_line={self.max_request_line}, schema_cache={self.schema_cache})"
        )


def _hide_password(dsn: str) -> str:
    """`postgresql://user:secret@host/db` → `postgresql://user:***@host/db`; key=value DSNs too."""
    dsn = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)


# --------------------------------------------------------------------------------------------
# responses


@dataclass
class _Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _gateway_reply(status: int, payload: Mapping[str, str], *extra: tuple[str, str]) -> _Reply:
    """A response of the API gateway itself (not PostgREST): plain JSON, no PostgREST headers."""
    body = json.dumps(dict(payload), separators=(",", ":")).encode()
    return _Reply(status, [("Content-Type", _JSON), *extra], body)


def _pgrst_reply(error: PgrstError) -> _Reply:
    return _Reply(error.status, error.response_headers(), error.body())


_NO_ROUTE = {"message": "no Route matched with those values"}
_NO_KEY = {
    "message": "No API key found in request",
    "hint": "No `apikey` request header or url param was found.",
}
_BAD_KEY = {
    "message": "Invalid API key",
    "hint": "Double check your Supabase `anon` or `service_role` API key.",
}
_LEGACY_DISABLED = {"message": "Legacy API keys are disabled"}
_SECRET_IN_BROWSER = {
    "message": "Forbidden use of secret API key in browser",
    "hint": "Secret API keys can only be used in a protected environment and should never be "
    "used in a browser. Delete this secret API key immediately!",
}


def _jwt_error(code: str, message: str, details: str | None = None) -> PgrstError:
    # Haskell's `show` of the message: double-quoted, and our messages need no escaping.
    challenge = f'Bearer error="invalid_token", error_description="{message}"'
    return PgrstError(401, code, message, details, None, [("WWW-Authenticate", challenge)])


def _internal_error(exc: BaseException) -> PgrstError:
    return PgrstError(
        500,
        "PGRSTX00",
        "Internal error in the local Supabase stand-in; its log has the traceback.",
        type(exc).__name__,
    )


# --------------------------------------------------------------------------------------------
# PostgREST's JWT layer (postgrest-protocol.md §10.1; Auth/Jwt.hs + jose-jwt's decode)


class _JwtRejected(Exception):
    def __init__(self, error: PgrstError) -> None:
        super().__init__(error.code)
        self.error = error


def _b64url(segment: str) -> bytes | None:
    """Unpadded base64url, strictly (jose-jwt rejects padding and foreign characters)."""
    if len(segment) % 4 == 1 or not _B64URL.fullmatch(segment):
        return None
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # JSON has no NaN/Infinity; aeson refuses them


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(raw: bytes) -> Any:
    return _DECODER.decode(raw.decode("utf-8"))


def _as_int64(value: float) -> int:
    """Scientific's `toBoundedInteger`, defaulted to 0 as PostgREST does for odd numbers."""
    if isinstance(value, float):
        if not value.is_integer():
            return 0
        value = int(value)
    return value if _INT64_MIN <= value <= _INT64_MAX else 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_claims(claims: dict[str, Any], now: int) -> None:
    """`exp`, `nbf`, `iat` (30 s skew) and `aud` shape, first failure wins, in PostgREST's order."""
    checks: tuple[tuple[str, Callable[[int], bool], str], ...] = (
        ("exp", lambda t: now - _CLOCK_SKEW > t, "JWT expired"),
        ("nbf", lambda t: now + _CLOCK_SKEW < t, "JWT not yet valid"),
        ("iat", lambda t: now + _CLOCK_SKEW < t, "JWT issued at future"),
    )
    for name, invalid, message in checks:
        value = claims.get(name)
        if value is None:
            continue
        if not _is_number(value):
            raise _JwtRejected(_jwt_error("PGRST303", f"The JWT '{name}' claim must be a number"))
        if invalid(_as_int64(value)):
            raise _JwtRejected(_jwt_error("PGRST303", message))
    aud = claims.get("aud")
    if aud is not None and not (
        isinstance(aud, str) or (isinstance(aud, list) and all(isinstance(a, str) for a in aud))
    ):
        raise _JwtRejected(
            _jwt_error("PGRST303", "The JWT 'aud' claim must be a string or an array of strings")
        )
    # No `jwt-aud` is configured, so any audience matches.


class _JwtVerifier:
    """Verifies bearer tokens exactly as PostgREST v14 with an HS256 `jwt-secret` does."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode("utf-8")
        # Like PostgREST's JWT cache: a token's signature is checked once; its time claims on
        # every use. Only verified tokens are cached, so garbage cannot evict them for long.
        self._verified: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def claims(self, token: str, now: int) -> dict[str, Any]:
        """The token's claims (a fresh dict), or `_JwtRejected` with PostgREST's error."""
        with self._lock:
            claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            with self._lock:
                if len(self._verified) >= _JWT_CACHE_SIZE:
                    self._verified.clear()
                self._verified[token] = claims
        _check_claims(claims, now)
        return dict(claims)

    def _decode(self, token: str) -> dict[str, Any]:
        if token == "":
            raise _JwtRejected(_jwt_error("PGRST301", "Empty JWT is sent in Authorization header"))
        parts = token.split(".")
        if len(parts) != 3:
            raise _JwtRejected(_jwt_error("PGRST301", f"Expected 3 parts in JWT; got {len(parts)}"))
        header_b64, payload_b64, signature_b64 = parts
        header_raw = _b64url(header_b64)
        if header_raw is None:
            raise _bad_crypto()
        try:
            header = _loads(header_raw)
        except ValueError:
            raise _bad_crypto() from None
        if not isinstance(header, dict):
            raise _bad_crypto()
        if header.get("alg") == "none":
            if _b64url(payload_b64) is None:
                raise _bad_crypto()
            raise _JwtRejected(
                _jwt_error(
                    "PGRST301",
                    "Wrong or unsupported encoding algorithm",
                    "JWT is unsecured but expected 'alg' was not 'none'",
                )
            )
        if "enc" in header:
            # A JWE header; a 3-part token cannot be a JWE, so jose-jwt's parser fails.
            raise _bad_crypto()
        alg = header.get("alg")
        if alg not in _JWS_ALGORITHMS or not all(
            header.get(name) is None or isinstance(header.get(name), str) for name in ("typ", "cty", "kid")
        ):
            raise _bad_crypto()
        payload = _b64url(payload_b64)
        signature = _b64url(signature_b64)
        if payload is None or signature is None:
            raise _bad_crypto()
        if alg != "HS256" or header.get("kid") is not None:
            # The secret is one HS256 key without a `kid`: nothing else can match it.
            raise _JwtRejected(
                _jwt_error(
                    "PGRST301",
                    "No suitable key or wrong key type",
                    "No suitable key was found to decode the JWT",
                )
            )
        expected = hmac.new(self._key, f"{header_b64}.{payload_b64}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise _JwtRejected(
                _jwt_error(
                    "PGRST301",
                    "No suitable key or wrong key type",
                    "None of the keys was able to decode the JWT",
                )
            )
        try:
            claims = _loads(payload)
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise _JwtRejected(_jwt_error("PGRST303", "Parsing claims failed"))
        return claims


def _bad_crypto() -> _JwtRejected:
    return _JwtRejected(_jwt_error("PGRST301", "JWT cryptographic operation failed"))


_JWS_ALGORITHMS = frozenset(
    {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def _bearer_token(authorization: str) -> str | None:
    """wai-extra's `extractBearerAuth`: scheme `bearer` in any case, then the token; else None."""
    cut = len(authorization)
    for i, ch in enumerate(authorization):
        if ch in _BEARER_SPACE:
            cut = i
            break
    if authorization[:cut].lower() != "bearer":
        return None
    return authorization[cut:].lstrip(_BEARER_SPACE)


# --------------------------------------------------------------------------------------------
# Supabase API-key layer (supabase-keys.md §5)


class _KeyKind(Enum):
    ANON = "anon"
    SERVICE_ROLE = "service_role"
    PUBLISHABLE = "publishable"
    SECRET = "secret"

    @property
    def legacy(self) -> bool:
        return self in (_KeyKind.ANON, _KeyKind.SERVICE_ROLE)


@dataclass(frozen=True)
class _Minted:
    token: str
    claims: dict[str, Any]
    expires: float


class _RoleTokens:
    """Short-lived role JWTs minted for sb_ keys, reused until half their lifetime has passed."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._lock = threading.Lock()
        self._tokens: dict[str, _Minted] = {}

    def get(self, role: str) -> _Minted:
        now = time.time()
        with self._lock:
            minted = self._tokens.get(role)
            if minted is None or minted.expires - now < _MINTED_LIFETIME / 2:
                token = mint_role_jwt(self._secret, role, _MINTED_LIFETIME)
                claims = _loads(_b64url(token.split(".")[1]) or b"{}")
                minted = _Minted(token, claims, float(claims["exp"]))
                self._tokens[role] = minted
            return minted


@dataclass
class _Credentials:
    """What the key layer forwards: the Authorization value PostgREST will see."""

    authorization: str | None
    minted: _Minted | None = None


class _KeyLayer:
    def __init__(self, config: GatewayConfig) -> None:
        keys = config.api_keys
        self._keys: list[tuple[_KeyKind, bytes]] = [
            (kind, value.encode("utf-8"))
            for kind, value in (
                (_KeyKind.ANON, keys.anon),
                (_KeyKind.SERVICE_ROLE, keys.service_role),
                (_KeyKind.PUBLISHABLE, keys.publishable),
                (_KeyKind.SECRET, keys.secret),
            )
            if value
        ]
        self._legacy_enabled = config.legacy_keys_enabled
        self._kong_mode = config.kong_mode
        self._tokens = _RoleTokens(config.jwt_secret)

    def classify(self, presented: str) -> _KeyKind | None:
        """Which configured key `presented` is; compares against every key in constant time."""
        candidate = presented.encode("utf-8", "surrogateescape")
        found: _KeyKind | None = None
        for kind, value in self._keys:
            if hmac.compare_digest(candidate, value) and found is None:
                found = kind
        return found

    def authorize(
        self, apikey: str | None, authorization: str | None, user_agent: str | None
    ) -> _Credentials | _Reply:
        if not apikey:
            return _gateway_reply(401, _NO_KEY)  # row 1
        kind = self.classify(apikey)
        if kind is None:
            return _gateway_reply(401, _BAD_KEY)  # row 2
        if kind.legacy and not self._legacy_enabled:
            return _gateway_reply(401, _LEGACY_DISABLED)  # row 3
        if kind is _KeyKind.SECRET and (user_agent or "").startswith("Mozilla/"):
            return _gateway_reply(
                401, _SECRET_IN_BROWSER, ("sb-error-code", "UNAUTHORIZED_INVALID_API_KEY_TYPE")
            )  # row 4, before rows 5–8
        if self._kong_mode and authorization is not None and authorization.startswith("Bearer sb_"):
            # Kong's expression keeps Authorization only if it does not start with `Bearer sb_`.
            authorization = None
        if kind.legacy:
            if authorization is None:
                return _Credentials(f"Bearer {apikey}")  # row 8
            return _Credentials(authorization)  # row 7
        if authorization is None or self._same_key(authorization, apikey):
            role = "service_role" if kind is _KeyKind.SECRET else "anon"
            minted = self._tokens.get(role)
            return _Credentials(f"Bearer {minted.token}", minted)  # row 5
        return _Credentials(authorization)  # rows 6 and 7: PostgREST decides

    @staticmethod
    def _same_key(authorization: str, apikey: str) -> bool:
        token = _bearer_token(authorization)
        return token is not None and hmac.compare_digest(
            token.encode("utf-8", "surrogateescape"), apikey.encode("utf-8", "surrogateescape")
        )


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


# --------------------------------------------------------------------------------------------
# the gateway


class Gateway:
    """Local Supabase API gateway + PostgREST front; `start()`, then requests to `url + /rest/v1`."""

    def __init__(
        self,
        config: GatewayConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        executor: Executor | None = None,
        requests: RequestLog | None = None,
    ) -> None:
        if len(config.jwt_secret) < 32:
            raise GatewayError("jwt_secret must be at least 32 characters long (PostgREST refuses shorter ones)")
        if config.pool_size < 1:
            raise GatewayError("pool_size must be at least 1")
        if executor is None:
            from .engine import execute

            executor = execute
        self._config = config
        self._engine_config = config.engine
        self._executor = executor
        self._host = host
        self._requested_port = port
        self.requests = requests if requests is not None else RequestLog()
        self._keys = _KeyLayer(config)
        self._jwt = _JwtVerifier(config.jwt_secret)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None
        self._port: int | None = None
        self._checking = threading.Event()
        self._schema_cache: SchemaCache | None = None

    # ---- lifecycle

    @property
    def port(self) -> int:
        if self._port is None:
            raise GatewayError("the gateway is not started; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>` (clients append `/rest/v1`)."""
        return f"http://{self._host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def schema_cache(self) -> SchemaCache | None:
        """The schema cache requests are answered from (None with `schema_cache=False`)."""
        return self._schema_cache

    def set_max_rows(self, n: int | None) -> None:
        """Change PostgREST's `db-max-rows` for the requests that start from now on."""
        if n is not None and n < 0:
            raise ValueError("max rows must be None (unlimited) or a non-negative integer")
        self._engine_config = dataclasses.replace(self._engine_config, max_rows=n)

    def start(self) -> None:
        """Open the connection pool and start serving; returns once connections are accepted."""
        with self._lock:
            if self._server is not None:
                raise GatewayError("this Gateway is already started")
            # One direct attempt first: libpq's reason (refused, no such role, …) beats a pool timeout.
            problem = _probe_database(self._config.database_url)
            if problem is not None:
                raise GatewayError(
                    f"the gateway could not connect to PostgreSQL: {problem}; check that the server "
                    "is running and that database_url names the authenticator login role"
                )
            pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = psycopg_pool.ConnectionPool(
                self._config.database_url,
                min_size=self._config.pool_size,
                max_size=self._config.pool_size,
                timeout=self._config.pool_timeout,
                # Not autocommit: the engine's first statement opens the request's transaction
                # (psycopg's implicit BEGIN) and it commits or rolls back itself.
                kwargs={"application_name": "parlant-supabase-gateway"},
                open=False,
                name="parlant-supabase-gateway",
            )
            try:
                pool.open(wait=True, timeout=max(self._config.pool_timeout, 5.0))
            except psycopg_pool.PoolTimeout:
                pool.close()
                raise GatewayError(
                    f"the gateway could not open {self._config.pool_size} connections to PostgreSQL "
                    f"within {max(self._config.pool_timeout, 5.0):.0f} s: "
                    f"{_probe_database(self._config.database_url) or 'no error reported'}; lower "
                    "pool_size or raise the server's max_connections"
                ) from None
            try:
                self._start_schema_cache()
            except BaseException:
                pool.close()
                raise
            try:
                server = _Server((self._host, self._requested_port), self)
            except OSError as exc:
                pool.close()
                self._stop_schema_cache()
                raise GatewayError(
                    f"the gateway cannot listen on {self._host}:{self._requested_port}: {exc.strerror}; "
                    "choose another port (0 picks a free one)"
                ) from None
            self._pool = pool
            self._server = server
            self._port = server.server_address[1]
            # serve_forever's loop must run before start() returns: the listening socket already
            # queues connections, so a client connecting right after start() is served.
            self._serve_thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.1},
                name=f"gateway-{self._port}", daemon=True,
            )
            self._serve_thread.start()
            logger.info("gateway listening on %s", self.url)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close open connections, join the threads, close the pool. Idempotent."""
        with self._lock:
            server, self._server = self._server, None
            serve_thread, self._serve_thread = self._serve_thread, None
            pool, self._pool = self._pool, None
            if server is None:
                return
            try:
                server.shutdown()
                if serve_thread is not None:
                    serve_thread.join(timeout)
                server.close_connections(timeout)
                server.server_close()
            finally:
                self._stop_schema_cache()
                if pool is not None:
                    pool.close(timeout=timeout)
            logger.info("gateway on port %s stopped", self._port)

    def _start_schema_cache(self) -> None:
        """Load the schema cache and start its listener, as PostgREST does before serving."""
        if not self._config.schema_cache:
            return
        cache = SchemaCache(self._config.database_url, self._engine_config.schemas)
        try:
            cache.start()
        except SchemaCacheError as exc:
            cache.stop()
            raise GatewayError(f"the gateway could not load its schema cache: {exc}") from None
        self._schema_cache = cache
        self._engine_config = dataclasses.replace(self._engine_config, schema_cache=cache)

    def _stop_schema_cache(self) -> None:
        cache, self._schema_cache = self._schema_cache, None
        if cache is not None:
            cache.stop()
            self._engine_config = dataclasses.replace(self._engine_config, schema_cache=None)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"url={self.url}" if self._server is not None else "stopped"
        return f"<Gateway {state}>"

    # ---- one request

    def _serve(self, handler: _Handler, body: bytes) -> None:
        method = handler.command or ""
        raw_path, raw_query = _split_target(handler.path)
        try:
            if raw_path == REST_PREFIX or raw_path.startswith(REST_PREFIX + "/"):
                reply = self._rest(method, raw_path[len(REST_PREFIX):] or "/", raw_query, handler, body)
            else:
                reply = _gateway_reply(404, _NO_ROUTE)
        except Exception as exc:  # a bug in the gateway itself: still answer like PostgREST
            logger.exception("the gateway failed on %s %s", method, raw_path)
            reply = _pgrst_reply(_internal_error(exc))
        self._reply(handler, reply)

    def _reply(self, handler: _Handler, reply: _Reply) -> None:
        """Record the request, then send the reply (so a finished request is always logged)."""
        method = handler.command or ""
        raw_path, raw_query = _split_target(handler.path)
        self.requests.record(method, raw_path, _redact_query(raw_query), reply.status)
        logger.debug("%s %s -> %d", method, raw_path, reply.status)
        handler._send(reply, head_only=method == "HEAD")

    def _rest(self, method: str, path: str, raw_query: str, handler: _Handler, body: bytes) -> _Reply:
        headers: dict[str, str] = {}
        for name, value in handler.headers.items():
            lowered = name.lower()
            if lowered in _HOP_BY_HOP:
                continue
            text = _header_text(value.strip())
            headers[lowered] = f"{headers[lowered]}, {text}" if lowered in headers else text
        query = _parse_query(raw_query)
        apikey = headers.get("apikey") or next((v for k, v in query if k == "apikey"), None)
        # A credential has no meaning to PostgREST (it would be a filter on a column `apikey`).
        query = [(k, v) for k, v in query if k != "apikey"]
        granted = self._keys.authorize(apikey, headers.get("authorization"), headers.get("user-agent"))
        if isinstance(granted, _Reply):
            return granted
        if granted.authorization is None:
            headers.pop("authorization", None)
        else:
            headers["authorization"] = granted.authorization
        anon_role = self._engine_config.anon_role
        try:
            role, claims = self._authenticate(granted, anon_role)
        except _JwtRejected as rejected:
            return _pgrst_reply(rejected.error)
        request = ApiRequest(
            method=method, path=path, query=query, headers=headers, body=body, role=role, claims=claims
        )
        return self._execute(request)

    def _authenticate(self, granted: _Credentials, anon_role: str) -> tuple[str, dict[str, Any]]:
        if granted.minted is not None:
            claims = dict(granted.minted.claims)
        else:
            token = _bearer_token(granted.authorization) if granted.authorization is not None else None
            claims = {} if token is None else self._jwt.claims(token, int(time.time()))
        if "role" in claims:
            raw_role = claims["role"]
            role = raw_role if isinstance(raw_role, str) else json.dumps(raw_role, separators=(",", ":"))
        elif anon_role:
            role = anon_role
        else:
            raise _JwtRejected(
                PgrstError(401, "PGRST302", "Anonymous access is disabled", headers=[("WWW-Authenticate", "Bearer")])
            )
        claims["role"] = role
        return role, claims

    def _execute(self, request: ApiRequest) -> _Reply:
        pool = self._pool
        if pool is None:
            return _pgrst_reply(PgrstError(503, "PGRST000", "Database connection error.", "the gateway is stopping"))
        config = self._engine_config
        try:
            conn = pool.getconn()
        except psycopg_pool.PoolTimeout:
            return _pgrst_reply(self._acquire_failure())
        except psycopg_pool.PoolClosed:
            return _pgrst_reply(PgrstError(503, "PGRST000", "Database connection error.", "the gateway is stopping"))
        discard = False
        try:
            response = self._executor(conn, request, config)
            reply = _Reply(response.status, list(response.headers), bytes(response.body))
        except PgrstError as error:
            reply = _pgrst_reply(error)
        except psycopg.Error as exc:
            if exc.sqlstate is None or conn.broken:
                discard = True
                reply = _pgrst_reply(
                    PgrstError(503, "PGRST001", "Database client error. Retrying the connection.", str(exc) or None)
                )
            else:
                reply = _pgrst_reply(from_pg_error(exc, request.role, config.anon_role))
        except Exception as exc:
            discard = True
            logger.exception("the engine failed on %s %s", request.method, request.path)
            reply = _pgrst_reply(_internal_error(exc))
        finally:
            self._release(pool, conn, discard)
        return reply

    def _release(
        self, pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]], conn: psycopg.Connection[Any], discard: bool
    ) -> None:
        if conn.broken:
            # The server dropped this session (restart, pg_terminate_backend): the idle ones in
            # the pool are probably gone too, so have them tested before requests trip on them.
            self._check_pool_soon(pool)
        elif not discard and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.rollback()
            except psycopg.Error:
                discard = True
        if discard:
            # After an unexpected failure the session may hold anything (a role, GUCs, an open
            # cursor): close it and let the pool open a fresh one instead of guessing.
            conn.close()
        try:
            pool.putconn(conn)
        except psycopg_pool.PoolClosed:
            conn.close()

    def _acquire_failure(self) -> PgrstError:
        # The pool keeps its connection count while it retries failed connects in the
        # background, so its stats cannot tell "all busy" from "database gone": ask libpq.
        problem = _probe_database(self._config.database_url, timeout=2)
        if problem is not None:
            return PgrstError(503, "PGRST000", "Database connection error.", problem)
        return PgrstError(504, "PGRST003", "Timed out acquiring connection from connection pool.")

    def _check_pool_soon(self, pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]]) -> None:
        """After a dropped connection, test the idle ones in the background (one check at a time)."""
        if self._checking.is_set():
            return
        self._checking.set()

        def check() -> None:
            try:
                pool.check()
            except Exception:
                logger.debug("pool check after a lost connection failed", exc_info=True)
            finally:
                self._checking.clear()

        threading.Thread(target=check, name="gateway-pool-check", daemon=True).start()


def _split_target(target: str) -> tuple[str, str]:
    """Raw path and raw query of a request target (origin or absolute form)."""
    if target.startswith(("http://", "https://")):
        split = urlsplit(target)
        return split.path or "/", split.query
    path, _, query = target.partition("?")
    return path, query


def _probe_database(dsn: str, timeout: int = 5) -> str | None:
    """None if `dsn` accepts a connection, else libpq's reason (which never quotes a password)."""
    try:
        with psycopg.connect(dsn, connect_timeout=timeout):
            return None
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__

