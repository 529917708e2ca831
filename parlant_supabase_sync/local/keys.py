"""API keys for the local stand-in, shaped like a Supabase project's.

* JWT secret: random, 64 URL-safe characters (PostgREST requires at least 32).
* Legacy keys: HS256 JWTs `{"iss": "supabase", "ref": <ref>, "role": "anon"|"service_role",
  "iat": …, "exp": iat + 10 years}`, as hosted projects have.
* Opaque keys: `sb_publishable_` / `sb_secret_` + 22 base64url characters + `_` + an 8-hex-digit
  CRC-32 checksum of everything before it. Hosted Supabase's checksum rule is not public; this
  one is local only, and the gateway compares whole keys anyway.

Keys are never logged; `KeySet.__repr__` shows none of them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
import time
import zlib
from dataclasses import dataclass
from typing import Any, Literal

import jwt

__all__ = [
    "LEGACY_KEY_LIFETIME",
    "PUBLISHABLE_PREFIX",
    "SECRET_PREFIX",
    "ApiKeys",
    "KeySet",
    "api_keys",
    "generate_jwt_secret",
    "generate_opaque_key",
    "generate_project_ref",
    "mint_legacy_key",
    "mint_role_jwt",
    "opaque_key_checksum_ok",
]

PUBLISHABLE_PREFIX = "sb_publishable_"
SECRET_PREFIX = "sb_secret_"
#: Legacy keys are valid for about ten years, like a hosted project's.
LEGACY_KEY_LIFETIME = 10 * 365 * 24 * 3600
_RANDOM_BYTES = 16  # → 22 base64url characters without padding
_KEYS_FILE_VERSION = 1

LegacyRole = Literal["anon", "service_role"]
OpaqueKind = Literal["publishable", "secret"]


def generate_jwt_secret() -> str:
    """A fresh HS256 secret: 64 URL-safe characters."""
    return secrets.token_urlsafe(48)


def generate_project_ref() -> str:
    """A project ref shaped like Supabase's: 20 lowercase letters."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(20))


def _checksum(body: str) -> str:
    return f"{zlib.crc32(body.encode('ascii')):08x}"


def generate_opaque_key(kind: OpaqueKind) -> str:
    """`sb_publishable_…` or `sb_secret_…`: prefix, 22 base64url chars, `_`, 8-char checksum."""
    prefix = {"publishable": PUBLISHABLE_PREFIX, "secret": SECRET_PREFIX}[kind]
    random_part = base64.urlsafe_b64encode(secrets.token_bytes(_RANDOM_BYTES)).decode().rstrip("=")
    body = prefix + random_part
    return f"{body}_{_checksum(body)}"


def opaque_key_checksum_ok(key: str) -> bool:
    """Whether `key` is a well-formed opaque key of this stand-in (prefix, length, checksum)."""
    for prefix in (PUBLISHABLE_PREFIX, SECRET_PREFIX):
        if key.startswith(prefix):
            # The random part may itself contain `_`: split on fixed lengths, never on `_`.
            rest = key[len(prefix):]
            if len(rest) != 22 + 1 + 8 or rest[22] != "_":
                return False
            return secrets.compare_digest(_checksum(prefix + rest[:22]), rest[23:])
    return False


def mint_legacy_key(
    jwt_secret: str, role: LegacyRole, ref: str, *, issued_at: int | None = None
) -> str:
    """A long-lived legacy API key (HS256 JWT) for `role`."""
    iat = int(time.time()) if issued_at is None else issued_at
    claims = {"iss": "supabase", "ref": ref, "role": role, "iat": iat, "exp": iat + LEGACY_KEY_LIFETIME}
    return jwt.encode(claims, jwt_secret, algorithm="HS256")


def mint_role_jwt(
    jwt_secret: str, role: str, lifetime: float = 300.0, **extra_claims: Any
) -> str:
    """A short-lived HS256 JWT for `role`, as the hosted gateway forwards for an sb_ key."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": "supabase", **extra_claims, "role": role, "iat": now,
                              "exp": now + max(1, int(lifetime))}
    return jwt.encode(claims, jwt_secret, algorithm="HS256")


@dataclass(frozen=True)
class ApiKeys:
    """The project's four API keys as the gateway checks them; `repr` shows none of them."""

    anon: str
    service_role: str
    publishable: str
    secret: str

    def __repr__(self) -> str:
        return "ApiKeys(<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True)
class KeySet:
    """Everything secret about one local project; `repr` shows none of it."""

    jwt_secret: str
    ref: str
    anon: str
    service_role: str
    publishable: str
    secret: str

    def __repr__(self) -> str:
        return f"KeySet(ref={self.ref!r}, keys=<hidden>)"

    __str__ = __repr__

    @classmethod
    def generate(cls) -> KeySet:
        jwt_secret = generate_jwt_secret()
        ref = generate_project_ref()
        return cls(
            jwt_secret=jwt_secret,
            ref=ref,
            anon=mint_legacy_key(jwt_secret, "anon", ref),
            service_role=mint_legacy_key(jwt_secret, "service_role", ref),
            publishable=generate_opaque_key("publishable"),
            secret=generate_opaque_key("secret"),
        )

    def save(self, path: str) -> None:
        """Write to `path` with mode 0600 (created exclusively; replaces atomically)."""
        payload = {"version": _KEYS_FILE_VERSION, "jwt_secret": self.jwt_secret, "ref": self.ref,
                   "anon": self.anon, "service_role": self.service_role,
                   "publishable": self.publishable, "secret": self.secret}
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(payload, fh)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str) -> KeySet:
        """Read a file written by `save`; `ValueError` if it is malformed."""
        with open(path) as fh:
            try:
                payload = json.load(fh)
            except json.JSONDecodeError:
                raise ValueError(f"{path} is not a keys file; delete it to generate new keys") from None
        fields = ("jwt_secret", "ref", "anon", "service_role", "publishable", "secret")
        if not isinstance(payload, dict) or not all(isinstance(payload.get(f), str) for f in fields):
            raise ValueError(f"{path} is not a keys file; delete it to generate new keys")
        return cls(**{f: payload[f] for f in fields})

    @classmethod
    def load_or_create(cls, path: str) -> KeySet:
        """The keys stored at `path`, or new ones saved there (so restarts keep the same keys)."""
        if os.path.exists(path):
            return cls.load(path)
        keys = cls.generate()
        keys.save(path)
        return keys

    def api_keys(self) -> ApiKeys:
        """The four keys in the gateway's `ApiKeys` form."""
        return api_keys(self)


def api_keys(keys: KeySet) -> ApiKeys:
    """The gateway's `ApiKeys` for `keys`."""
    return ApiKeys(
        anon=keys.anon, service_role=keys.service_role,
        publishable=keys.publishable, secret=keys.secret,
    )
