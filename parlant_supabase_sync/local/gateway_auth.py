"""The gateway's authentication layers: Supabase's API keys and PostgREST's JWT check.

* the Supabase API-key layer of shared/supabase-keys.md §5 (hosted behaviour by default,
  self-hosted Kong's overwrite of any `Bearer sb_…` with `kong_mode=True`);
* PostgREST's JWT layer (postgrest-protocol.md §10.1): HS256 with the project's JWT secret,
  30 s clock skew, the exact PGRST301/302/303 bodies and `WWW-Authenticate` headers;
* the gateway's own JSON replies (`_Reply`, the 401 bodies).

Keys and JWTs never reach a log line or an exception message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from .errors import PgrstError
from .keys import mint_role_jwt

if TYPE_CHECKING:
    from .gateway import GatewayConfig

_JSON = "application/json; charset=utf-8"
# Minted role JWTs live this long; one is reused until half of that has passed.
_MINTED_LIFETIME = 300.0
_CLOCK_SKEW = 30
_JWT_CACHE_SIZE = 1000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# Haskell's `isSpace` on a byte, which PostgREST's bearer extraction splits on.
_BEARER_SPACE = " \t\n\r\x0b\x0c\xa0"


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


