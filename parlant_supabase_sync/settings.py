"""Connection settings (`SupabaseSettings`, `RetryPolicy`), the environment, API-key inspection.

Pure: nothing here performs I/O. Validation failures become `ConfigurationError` naming the
environment variable to fix; the API key never appears in a message, repr or dump.

This module is the one place that reads the process environment: `read_environment()` for the
package's variables (`ENVIRONMENT_VARIABLES`), `SupabaseSettings.from_env()` for settings.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from typing_extensions import Self

from parlant_supabase_sync.errors import ConfigurationError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ENVIRONMENT_VARIABLES",
    "Environment",
    "KeyInfo",
    "KeyKind",
    "RetryPolicy",
    "SupabaseSettings",
    "Timeouts",
    "decode_key_role",
    "is_loopback",
    "key_kind",
    "read_environment",
]

KeyKind = Literal["secret", "publishable", "legacy_jwt", "unknown"]
VectorStoreKind = Literal["memory", "supabase"]

URL_ADVICE = "set SUPABASE_URL to your project URL, e.g. https://<ref>.supabase.co"
KEY_ADVICE = (
    "set SUPABASE_KEY to the project's secret key (sb_secret_…) or legacy service_role key "
    "(Dashboard → Project Settings → API Keys)"
)
HTTP_ADVICE = (
    "use https://, or set PARLANT_SUPABASE_ALLOW_HTTP=1 (allow_insecure_http=True) if you "
    "trust every network in between (http is always allowed for 127.0.0.1, localhost and "
    "[::1])"
)
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")


# --- API keys (shared/supabase-keys.md §6) ------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    """What a key's format tells without a request: its kind and, for JWTs, its claims."""

    kind: KeyKind
    role: str | None
    ref: str | None = None
    expires_at: int | None = None

    def expired(self, now: datetime | None = None) -> bool:
        """True when the key is a JWT whose `exp` is in the past."""
        if self.expires_at is None:
            return False
        moment = now or datetime.now(timezone.utc)
        return self.expires_at < moment.timestamp()


def _jwt_claims(key: str) -> dict[str, Any] | None:
    parts = key.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def key_kind(key: str) -> KeyKind:
    """Classify a Supabase API key by its format alone (no request, no signature check)."""
    if key.startswith("sb_secret_"):
        return "secret"
    if key.startswith("sb_publishable_"):
        return "publishable"
    if _jwt_claims(key) is not None:
        return "legacy_jwt"
    return "unknown"


def decode_key_role(key: str) -> KeyInfo:
    """Tell which database role a key runs as, from its format (the signature is not verified).

    Raises `ConfigurationError` for a Management API personal access token (`sbp_…`).
    """
    if key.startswith("sbp_"):
        raise ConfigurationError(
            "SUPABASE_KEY holds a personal access token (sbp_…) for the Supabase Management "
            f"API, not a project API key; {KEY_ADVICE}"
        )
    kind = key_kind(key)
    if kind == "secret":
        return KeyInfo(kind, "service_role")
    if kind == "publishable":
        return KeyInfo(kind, "anon")
    if kind == "legacy_jwt":
        claims = _jwt_claims(key) or {}
        role = claims.get("role")
        ref = claims.get("ref")
        exp = claims.get("exp")
        return KeyInfo(
            kind,
            str(role) if role is not None else None,
            ref if isinstance(ref, str) else None,
            int(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None,
        )
    return KeyInfo("unknown", None)


# --- settings ----------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # pydantic's ValidationError prints the rejected input, which may be the API key; every
    # construction path re-raises it as a ConfigurationError built from messages only.
    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _configuration_error(exc, type(self)) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise _configuration_error(exc, cls) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as exc:
            raise _configuration_error(exc, cls) from None


class RetryPolicy(_Model):
    """Capped exponential backoff: delay n = min(max_delay, base_delay * 2**n), with jitter."""

    attempts: int = Field(default=3, ge=1, le=20)
    base_delay: float = Field(default=0.1, ge=0)
    max_delay: float = Field(default=2.0, ge=0)
    jitter: bool = True

    @model_validator(mode="after")
    def _max_not_below_base(self) -> Self:
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must be at least base_delay")
        return self


class Timeouts(_Model):
    """HTTP timeouts in seconds; `as_httpx()` gives the `httpx.Timeout`."""

    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=30.0, gt=0)
    write: float = Field(default=30.0, gt=0)
    pool: float = Field(default=10.0, gt=0)

    def as_httpx(self) -> httpx.Timeout:
        import httpx

        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


def _normalize_url(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("it is empty")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError("it must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("it has no host name")
    if parts.username is not None or parts.password is not None:
        raise ValueError("it must not contain user credentials")
    if parts.query or parts.fragment:
        raise ValueError("it must not contain a query string or fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise ValueError("its port is not a number between 0 and 65535") from None
    path = parts.path.rstrip("/")
    if path.endswith("/rest/v1"):
        path = path[: -len("/rest/v1")].rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}"


def is_loopback(url: str) -> bool:
    """True when `url`'s host is localhost or a loopback address (127.0.0.0/8, ::1), as for the
    local stack: traffic never leaves the machine."""
    host = urlsplit(url).hostname or ""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Seconds the metadata cache keeps a store's metadata (PARLANT_SUPABASE_METADATA_CACHE_TTL).
DEFAULT_METADATA_CACHE_TTL = 30.0


class SupabaseSettings(_Model):
    """How to reach one Supabase project's REST API, and the client's limits."""

    url: str
    """The project URL (SUPABASE_URL), normalized: no trailing slash, no `/rest/v1`.

    Must be `https://` unless the host is loopback (127.0.0.1, localhost, [::1]) or
    `allow_insecure_http` is set: over http the key travels in clear text.
    """
    key: SecretStr
    db_schema: str = "public"
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_workers: int = Field(default=16, ge=1, le=1024)
    """Size of the limiter (PARLANT_SUPABASE_MAX_WORKERS): at most this many requests at once.

    Refused (`ConfigurationError`) when larger than an explicit `http_pool_size`: every worker
    needs its own pooled connection, or it waits for one and times out (pool timeout).
    """
    http_pool_size: int = Field(default=0, ge=0, le=4096)
    """Connections in the HTTP pool (PARLANT_SUPABASE_HTTP_POOL_SIZE); 0 means `max_workers`.

    Never silently raised: a value below `max_workers` is refused with a message saying to
    raise it, leave it unset, or lower PARLANT_SUPABASE_MAX_WORKERS.
    """
    metadata_cache_ttl: float = Field(default=DEFAULT_METADATA_CACHE_TTL, ge=0)
    page_size: int = Field(default=1000, ge=1, le=10000)
    max_url_bytes: int = Field(default=6144, ge=0, le=65536)
    """Longest request target (path and query) a GET may have (PARLANT_SUPABASE_MAX_URL_BYTES).

    Supabase's gateway refuses request lines over 8 KiB (414); a read whose filter would not
    fit is sent in a POST body to the generated ``parlant_find`` function instead (0: always).
    """
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    allow_public_key: bool = False
    """Accept a public key (publishable/anon, or a user's JWT) (PARLANT_SUPABASE_ALLOW_PUBLIC_KEY=1).

    Refused by default: row-level security would make every read silently empty. Only for
    databases set up with `--anon-policy per-customer`, where such keys see their own rows.
    """
    allow_insecure_http: bool = False
    """Allow `http://` to a non-loopback host (PARLANT_SUPABASE_ALLOW_HTTP=1), e.g. a gateway
    on a private network you trust; the key is then sent unencrypted."""
    vector_store: VectorStoreKind = "memory"
    """Where ``supabase_stores(every_store=True)`` keeps Parlant's vector databases
    (PARLANT_SUPABASE_VECTOR_STORE): ``memory`` (Parlant's TransientVectorDatabase, re-embedded
    at every start) or ``supabase`` (pgvector tables: ``parlant-supabase-sync sql --vectors
    DIMS``)."""

    if TYPE_CHECKING:
        # The key may be passed as a plain str (validated into SecretStr); say so to type checkers.
        def __init__(
            self,
            *,
            url: str,
            key: str | SecretStr,
            db_schema: str = ...,
            timeouts: Timeouts | Mapping[str, float] = ...,
            max_workers: int = ...,
            http_pool_size: int = ...,
            metadata_cache_ttl: float = ...,
            page_size: int = ...,
            max_url_bytes: int = ...,
            retry: RetryPolicy | Mapping[str, Any] = ...,
            allow_public_key: bool = ...,
            allow_insecure_http: bool = ...,
            vector_store: VectorStoreKind = ...,
        ) -> None: ...

    @field_validator("url", mode="before")
    @classmethod
    def _check_url(cls, value: object) -> str:
        if not isinstance(value, str):
            raise ValueError("it must be a string")  # noqa: TRY004 (pydantic wants ValueError)
        return _normalize_url(value)

    @field_validator("key", mode="before")
    @classmethod
    def _check_key(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(raw, str):
            raise ValueError("it must be a string")  # noqa: TRY004 (pydantic wants ValueError)
        raw = raw.strip()
        if not raw:
            raise ValueError("it is empty")
        if any(character.isspace() for character in raw):
            raise ValueError("it contains whitespace; paste the key exactly")
        if raw.startswith("sbp_"):
            raise ValueError(
                "it holds a personal access token (sbp_…) for the Management API, not a "
                "project API key"
            )
        return SecretStr(raw)

    @field_validator("db_schema")
    @classmethod
    def _check_schema(cls, value: str) -> str:
        if not _IDENTIFIER_RE.match(value) or len(value.encode("utf-8")) > 63:
            raise ValueError(
                "it must be a schema name of letters, digits and underscores (e.g. public)"
            )
        return value

    @field_validator("metadata_cache_ttl")
    @classmethod
    def _finite_ttl(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("it must be a finite number of seconds (0 disables the cache)")
        return value

    @model_validator(mode="after")
    def _pool_covers_workers(self) -> Self:
        if self.http_pool_size == 0:
            object.__setattr__(self, "http_pool_size", self.max_workers)
        elif self.http_pool_size < self.max_workers:
            raise ConfigurationError(
                f"invalid PARLANT_SUPABASE_HTTP_POOL_SIZE (http_pool_size): {self.http_pool_size} "
                f"connections cannot serve PARLANT_SUPABASE_MAX_WORKERS (max_workers)="
                f"{self.max_workers} concurrent requests; raise it to at least "
                f"{self.max_workers}, leave it unset (it then equals max_workers), or lower "
                "PARLANT_SUPABASE_MAX_WORKERS"
            )
        return self

    @model_validator(mode="after")
    def _https_unless_loopback(self) -> Self:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.scheme == "http" and not self.allow_insecure_http and not is_loopback(self.url):
            raise ConfigurationError(
                f"invalid SUPABASE_URL (url): http:// to {host!r} would send the API key "
                f"unencrypted; {HTTP_ADVICE}"
            )
        return self

    def with_schema(self, schema: str) -> Self:
        """The same settings on another database schema (checked like SUPABASE_SCHEMA)."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        values["db_schema"] = schema
        return type(self)(**values)

    @property
    def rest_url(self) -> str:
        """The PostgREST base URL (`<url>/rest/v1`)."""
        return f"{self.url}/rest/v1"

    @property
    def key_kind(self) -> KeyKind:
        """The kind of the configured key (see `key_kind()`)."""
        return key_kind(self.key.get_secret_value())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Build settings from SUPABASE_URL, SUPABASE_KEY, SUPABASE_SCHEMA and PARLANT_SUPABASE_*.

        Keyword arguments override the environment.
        """
        env = read_environment(environ)
        values: dict[str, Any] = {}
        for variable, field in _ENV_FIELDS.items():
            raw = env.get(variable)
            if raw is not None:
                _assign(values, field, raw)
        for name, value in overrides.items():
            if name in ("timeouts", "retry") and isinstance(value, Mapping):
                values.setdefault(name, {}).update(value)
            else:
                values[name] = value
        for required, variable in (("url", "SUPABASE_URL"), ("key", "SUPABASE_KEY")):
            if values.get(required) is None:
                advice = URL_ADVICE if required == "url" else KEY_ADVICE
                raise ConfigurationError(f"{variable} is not set: {advice}")
        return cls(**values)


_ENV_FIELDS: dict[str, tuple[str, ...]] = {
    "SUPABASE_URL": ("url",),
    "SUPABASE_KEY": ("key",),
    "SUPABASE_SCHEMA": ("db_schema",),
    "PARLANT_SUPABASE_CONNECT_TIMEOUT": ("timeouts", "connect"),
    "PARLANT_SUPABASE_READ_TIMEOUT": ("timeouts", "read"),
    "PARLANT_SUPABASE_WRITE_TIMEOUT": ("timeouts", "write"),
    "PARLANT_SUPABASE_POOL_TIMEOUT": ("timeouts", "pool"),
    "PARLANT_SUPABASE_MAX_WORKERS": ("max_workers",),
    "PARLANT_SUPABASE_HTTP_POOL_SIZE": ("http_pool_size",),
    "PARLANT_SUPABASE_METADATA_CACHE_TTL": ("metadata_cache_ttl",),
    "PARLANT_SUPABASE_PAGE_SIZE": ("page_size",),
    "PARLANT_SUPABASE_MAX_URL_BYTES": ("max_url_bytes",),
    "PARLANT_SUPABASE_RETRY_ATTEMPTS": ("retry", "attempts"),
    "PARLANT_SUPABASE_RETRY_BASE_DELAY": ("retry", "base_delay"),
    "PARLANT_SUPABASE_RETRY_MAX_DELAY": ("retry", "max_delay"),
    "PARLANT_SUPABASE_RETRY_JITTER": ("retry", "jitter"),
    "PARLANT_SUPABASE_ALLOW_HTTP": ("allow_insecure_http",),
    "PARLANT_SUPABASE_ALLOW_PUBLIC_KEY": ("allow_public_key",),
    "PARLANT_SUPABASE_VECTOR_STORE": ("vector_store",),
}
_FIELD_VARIABLES: dict[tuple[str, ...], str] = {
    field: variable for variable, field in _ENV_FIELDS.items()
}


def _assign(values: dict[str, Any], field: tuple[str, ...], raw: str) -> None:
    target = values
    for part in field[:-1]:
        target = target.setdefault(part, {})
    target[field[-1]] = raw


def _configuration_error(exc: ValidationError, model: type[BaseModel]) -> ConfigurationError:
    problems = []
    prefix: tuple[str, ...] = ()
    if model is Timeouts:
        prefix = ("timeouts",)
    elif model is RetryPolicy:
        prefix = ("retry",)
    for error in exc.errors(include_url=False, include_input=False):
        nested = (error.get("ctx") or {}).get("error")
        if isinstance(nested, ConfigurationError):
            problems.append(str(nested))
            continue
        location = prefix + tuple(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        variable = _FIELD_VARIABLES.get(location)
        name = ".".join(location) or "settings"
        label = f"{variable} ({name})" if variable else name
        if location == ("url",):
            message = f"{message}; {URL_ADVICE}"
        elif location == ("key",):
            message = f"{message}; {KEY_ADVICE}"
        problems.append(f"invalid {label}: {message}")
    return ConfigurationError("; ".join(problems))


# --- the environment ---------------------------------------------------------------------------

ENVIRONMENT_VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        **{
            variable: f"SupabaseSettings.{'.'.join(field)}"
            for variable, field in _ENV_FIELDS.items()
        },
        "PARLANT_SUPABASE_PG_BINDIR": "local stand-in: directory of the PostgreSQL server binaries",
    }
)
"""Every environment variable the package reads, with what it sets."""

_SECRET_VARIABLES = frozenset({"SUPABASE_KEY"})


class Environment(Mapping[str, str]):
    """A snapshot of the package's environment variables that are set.

    Values are stripped; a blank value counts as unset. Only names in `ENVIRONMENT_VARIABLES`
    are kept. The repr names the variables and hides secret values (SUPABASE_KEY).
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = {
            name: value.strip()
            for name, value in values.items()
            if name in ENVIRONMENT_VARIABLES and value.strip()
        }

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={'**********' if name in _SECRET_VARIABLES else value!r}"
            for name, value in self._values.items()
        )
        return f"Environment({shown})"


def read_environment(environ: Mapping[str, str] | None = None) -> Environment:
    """The package's variables from `environ` (default: `os.environ`), see `Environment`.

    The one function that reads the process environment; everything else asks it, e.g.
    `read_environment().get("SUPABASE_SCHEMA")`.
    """
    return Environment(os.environ if environ is None else environ)
