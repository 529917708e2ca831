"""SupabaseSettings: environment and explicit construction, validation, key hiding, key kinds."""

from __future__ import annotations

import base64
import json
import pickle

import httpx
import pytest

from parlant_supabase_sync.errors import ConfigurationError
from parlant_supabase_sync.settings import (
    KeyInfo,
    RetryPolicy,
    SupabaseSettings,
    Timeouts,
    decode_key_role,
    is_loopback,
    key_kind,
)

SECRET = "sb_secret_AbCdEfGhIjKlMnOpQrStUv_12345678"
PUBLISHABLE = "sb_publishable_AbCdEfGhIjKlMnOpQrStUv_12345678"


def fake_jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


SERVICE_JWT = fake_jwt(
    {"iss": "supabase", "ref": "abcdefgh", "role": "service_role", "exp": 4102444800}
)


def env(**extra: str) -> dict[str, str]:
    return {
        "SUPABASE_URL": "https://abcdefgh.supabase.co",
        "SUPABASE_KEY": SECRET,
        **extra,
    }


def test_from_env_reads_url_key_and_defaults() -> None:
    settings = SupabaseSettings.from_env(env())
    assert settings.url == "https://abcdefgh.supabase.co"
    assert settings.rest_url == "https://abcdefgh.supabase.co/rest/v1"
    assert settings.key.get_secret_value() == SECRET
    assert settings.db_schema == "public"
    assert settings.max_workers == 16
    assert settings.http_pool_size == 16
    assert settings.metadata_cache_ttl == 30
    assert settings.page_size == 1000
    assert settings.retry == RetryPolicy(attempts=3, base_delay=0.1, max_delay=2.0, jitter=True)


def test_from_env_reads_the_optional_variables() -> None:
    settings = SupabaseSettings.from_env(
        env(
            SUPABASE_SCHEMA="api",
            PARLANT_SUPABASE_MAX_WORKERS="4",
            PARLANT_SUPABASE_HTTP_POOL_SIZE="8",
            PARLANT_SUPABASE_METADATA_CACHE_TTL="0",
            PARLANT_SUPABASE_PAGE_SIZE="250",
            PARLANT_SUPABASE_READ_TIMEOUT="12.5",
            PARLANT_SUPABASE_RETRY_ATTEMPTS="5",
            PARLANT_SUPABASE_RETRY_JITTER="false",
        )
    )
    assert settings.db_schema == "api"
    assert (settings.max_workers, settings.http_pool_size) == (4, 8)
    assert settings.metadata_cache_ttl == 0
    assert settings.page_size == 250
    assert settings.timeouts.read == 12.5
    assert settings.retry.attempts == 5
    assert settings.retry.jitter is False


def test_explicit_overrides_win_over_the_environment() -> None:
    settings = SupabaseSettings.from_env(
        env(PARLANT_SUPABASE_RETRY_ATTEMPTS="5"),
        url="http://127.0.0.1:5555",
        retry={"jitter": False},
    )
    assert settings.url == "http://127.0.0.1:5555"
    assert settings.retry.attempts == 5
    assert settings.retry.jitter is False


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:1234/")
    monkeypatch.setenv("SUPABASE_KEY", SECRET)
    assert SupabaseSettings.from_env().url == "http://127.0.0.1:1234"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://x.supabase.co/", "https://x.supabase.co"),
        ("https://x.supabase.co/rest/v1", "https://x.supabase.co"),
        ("https://x.supabase.co/rest/v1/", "https://x.supabase.co"),
        ("http://127.0.0.1:54321", "http://127.0.0.1:54321"),
        ("https://gw.example.com/supabase/rest/v1", "https://gw.example.com/supabase"),
    ],
)
def test_url_is_normalized(given: str, expected: str) -> None:
    assert SupabaseSettings(url=given, key=SECRET).url == expected


@pytest.mark.parametrize(
    "url", ["x.supabase.co", "ftp://x.supabase.co", "https://", "https://x.co/?a=1", ""]
)
def test_invalid_url_names_the_variable_and_the_fix(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        SupabaseSettings(url=url, key=SECRET)
    message = str(info.value)
    assert "SUPABASE_URL" in message
    assert "https://<ref>.supabase.co" in message


def test_missing_url_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="SUPABASE_URL is not set: set SUPABASE_URL"):
        SupabaseSettings.from_env({"SUPABASE_KEY": SECRET})


def test_missing_key_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="SUPABASE_KEY is not set") as info:
        SupabaseSettings.from_env({"SUPABASE_URL": "https://x.supabase.co"})
    assert "sb_secret_" in str(info.value)


def test_configuration_error_is_a_value_error_without_pydantic_context() -> None:
    with pytest.raises(ValueError) as info:
        SupabaseSettings(url="nope", key=SECRET)
    assert isinstance(info.value, ConfigurationError)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "ftp://bad", "key": SECRET},
        {"url": "https://x.supabase.co", "key": SECRET, "page_size": 0},
        {"url": "https://x.supabase.co", "key": SECRET, "unknown": 1},
        {"url": "https://x.supabase.co", "key": SECRET + " trailing"},
    ],
)
def test_errors_never_echo_the_key(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as info:
        SupabaseSettings(**kwargs)  # type: ignore[arg-type]
    rendered = f"{info.value}{info.value!r}{info.getrepr()}"
    assert "AbCdEfGhIj" not in rendered


def test_model_validate_also_hides_the_key() -> None:
    with pytest.raises(ConfigurationError) as info:
        SupabaseSettings.model_validate({"url": 5, "key": SECRET})
    assert "AbCdEfGhIj" not in str(info.value)


def test_repr_str_and_dump_never_show_the_key() -> None:
    settings = SupabaseSettings(url="https://x.supabase.co", key=SECRET)
    for text in (
        repr(settings),
        str(settings),
        str(settings.model_dump()),
        settings.model_dump_json(),
    ):
        assert "AbCdEfGhIj" not in text


def test_personal_access_token_is_refused_with_an_explanation() -> None:
    with pytest.raises(ConfigurationError, match="personal access token") as info:
        SupabaseSettings(url="https://x.supabase.co", key="sbp_0123456789abcdef")
    assert "0123456789abcdef" not in str(info.value)


@pytest.mark.parametrize("key", ["", "   "])
def test_empty_key_is_refused(key: str) -> None:
    with pytest.raises(ConfigurationError, match="SUPABASE_KEY"):
        SupabaseSettings(url="https://x.supabase.co", key=key)


def test_schema_must_be_an_identifier() -> None:
    with pytest.raises(ConfigurationError, match="SUPABASE_SCHEMA"):
        SupabaseSettings(url="https://x.supabase.co", key=SECRET, db_schema="pub lic")


def test_pool_size_must_cover_the_workers() -> None:
    with pytest.raises(ConfigurationError, match="PARLANT_SUPABASE_HTTP_POOL_SIZE"):
        SupabaseSettings(url="https://x.supabase.co", key=SECRET, max_workers=8, http_pool_size=4)
    assert (
        SupabaseSettings(url="https://x.supabase.co", key=SECRET, max_workers=8).http_pool_size == 8
    )


@pytest.mark.parametrize(
    ("field", "value"), [("page_size", 0), ("page_size", 10001), ("max_workers", 0)]
)
def test_limits_are_range_checked(field: str, value: int) -> None:
    with pytest.raises(ConfigurationError, match=field):
        SupabaseSettings(url="https://x.supabase.co", key=SECRET, **{field: value})  # type: ignore[arg-type]


def test_negative_cache_ttl_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="PARLANT_SUPABASE_METADATA_CACHE_TTL"):
        SupabaseSettings.from_env(env(PARLANT_SUPABASE_METADATA_CACHE_TTL="-1"))


def test_retry_policy_validates_delays() -> None:
    with pytest.raises(ConfigurationError, match="max_delay"):
        RetryPolicy(base_delay=3, max_delay=1)
    with pytest.raises(ConfigurationError, match="PARLANT_SUPABASE_RETRY_ATTEMPTS"):
        SupabaseSettings.from_env(env(PARLANT_SUPABASE_RETRY_ATTEMPTS="0"))


def test_timeouts_convert_to_httpx() -> None:
    timeout = Timeouts(connect=1, read=2, write=3, pool=4).as_httpx()
    assert timeout == httpx.Timeout(connect=1, read=2, write=3, pool=4)


def test_settings_are_immutable_and_picklable() -> None:
    settings = SupabaseSettings(url="https://x.supabase.co", key=SECRET)
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its own frozen-instance error
        settings.page_size = 5
    assert pickle.loads(pickle.dumps(settings)) == settings


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        (SECRET, "secret"),
        (PUBLISHABLE, "publishable"),
        (SERVICE_JWT, "legacy_jwt"),
        ("not-a-key", "unknown"),
        ("a.b.c", "unknown"),
        ("sbp_abc", "unknown"),
    ],
)
def test_key_kind_classifies_by_format(key: str, kind: str) -> None:
    assert key_kind(key) == kind


def test_decode_key_role_reports_roles_without_verifying() -> None:
    assert decode_key_role(SECRET) == KeyInfo("secret", "service_role")
    assert decode_key_role(PUBLISHABLE) == KeyInfo("publishable", "anon")
    info = decode_key_role(SERVICE_JWT)
    assert (info.kind, info.role, info.ref, info.expires_at) == (
        "legacy_jwt",
        "service_role",
        "abcdefgh",
        4102444800,
    )
    assert not info.expired()
    anon = decode_key_role(fake_jwt({"role": "anon", "exp": 1}))
    assert anon.role == "anon"
    assert anon.expired()
    assert decode_key_role("opaque") == KeyInfo("unknown", None)


def test_decode_key_role_refuses_a_personal_access_token() -> None:
    with pytest.raises(ConfigurationError, match="personal access token"):
        decode_key_role("sbp_0123456789abcdef")


def test_settings_expose_the_key_kind() -> None:
    assert SupabaseSettings(url="https://x.supabase.co", key=SERVICE_JWT).key_kind == "legacy_jwt"


# --- https unless loopback -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:54321",
        "http://localhost:54321",
        "http://LOCALHOST",
        "http://[::1]:54321",
        "http://127.0.0.2:8000",
        "https://x.supabase.co",
        "https://10.0.0.5",
    ],
)
def test_https_or_loopback_http_is_accepted(url: str) -> None:
    assert SupabaseSettings(url=url, key=SECRET).url == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://x.supabase.co",
        "http://10.0.0.5:8000",
        "http://kong:8000/rest/v1",
        "http://0.0.0.0:54321",
        "http://[::ffff:8.8.8.8]",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "http://2130706433",
    ],
)
def test_http_to_a_non_loopback_host_is_refused_in_one_line(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        SupabaseSettings(url=url, key=SECRET)
    message = str(info.value)
    assert message.startswith("invalid SUPABASE_URL (url): http:// to ")
    assert "PARLANT_SUPABASE_ALLOW_HTTP=1" in message
    assert "https://" in message
    assert "\n" not in message
    assert "AbCdEfGhIj" not in f"{message}{info.value!r}{info.getrepr()}"


def test_is_loopback_tells_the_local_stack_from_a_hosted_project() -> None:
    local = ["http://127.0.0.1:54321", "http://localhost", "http://[::1]:8000", "http://127.0.0.2"]
    remote = ["https://x.supabase.co", "http://localhost.example.com", "http://0.0.0.0", ""]
    assert all(is_loopback(url) for url in local)
    assert not any(is_loopback(url) for url in remote)


def test_http_refusal_never_contains_a_jwt_key() -> None:
    with pytest.raises(ConfigurationError) as info:
        SupabaseSettings(url="http://x.supabase.co", key=SERVICE_JWT)
    assert SERVICE_JWT.split(".")[1] not in f"{info.value}{info.value!r}{info.getrepr()}"


def test_http_to_any_host_is_allowed_when_asked_for() -> None:
    settings = SupabaseSettings(url="http://kong:8000", key=SECRET, allow_insecure_http=True)
    assert settings.rest_url == "http://kong:8000/rest/v1"
    assert SupabaseSettings(url="https://x.supabase.co", key=SECRET).allow_insecure_http is False


@pytest.mark.parametrize(("raw", "allowed"), [("1", True), ("true", True), ("0", False)])
def test_allow_http_is_read_from_the_environment(raw: str, allowed: bool) -> None:
    variables = env(SUPABASE_URL="http://gateway.internal", PARLANT_SUPABASE_ALLOW_HTTP=raw)
    if allowed:
        assert SupabaseSettings.from_env(variables).url == "http://gateway.internal"
    else:
        with pytest.raises(ConfigurationError, match="PARLANT_SUPABASE_ALLOW_HTTP=1"):
            SupabaseSettings.from_env(variables)


def test_invalid_allow_http_value_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="PARLANT_SUPABASE_ALLOW_HTTP"):
        SupabaseSettings.from_env(env(PARLANT_SUPABASE_ALLOW_HTTP="maybe"))


def test_an_override_allows_http_over_the_environment() -> None:
    settings = SupabaseSettings.from_env(
        env(SUPABASE_URL="http://gateway.internal"), allow_insecure_http=True
    )
    assert settings.allow_insecure_http is True


# --- limiter vs HTTP pool ------------------------------------------------------------------------


def test_a_limiter_wider_than_the_pool_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigurationError) as info:
        SupabaseSettings.from_env(
            env(PARLANT_SUPABASE_MAX_WORKERS="32", PARLANT_SUPABASE_HTTP_POOL_SIZE="10")
        )
    message = str(info.value)
    assert message.startswith("invalid PARLANT_SUPABASE_HTTP_POOL_SIZE (http_pool_size): 10 ")
    assert "PARLANT_SUPABASE_MAX_WORKERS" in message
    assert "at least 32" in message
    assert "\n" not in message
    assert "AbCdEfGhIj" not in message


@pytest.mark.parametrize(("workers", "pool", "expected"), [(8, 0, 8), (8, 8, 8), (4, 64, 64)])
def test_the_pool_is_never_smaller_than_the_limiter(workers: int, pool: int, expected: int) -> None:
    settings = SupabaseSettings(
        url="https://x.supabase.co", key=SECRET, max_workers=workers, http_pool_size=pool
    )
    assert (settings.max_workers, settings.http_pool_size) == (workers, expected)


def test_the_pool_rule_is_documented_on_the_fields() -> None:
    import inspect

    source = inspect.getsource(SupabaseSettings)
    assert "Refused (`ConfigurationError`) when larger than an explicit `http_pool_size`" in source


# --- the environment, read in one place ----------------------------------------------------------


def test_read_environment_keeps_the_package_variables_that_are_set() -> None:
    from parlant_supabase_sync.settings import ENVIRONMENT_VARIABLES, read_environment

    snapshot = read_environment(
        {
            "SUPABASE_URL": " https://x.supabase.co ",
            "SUPABASE_KEY": SECRET,
            "SUPABASE_SCHEMA": "   ",
            "PARLANT_SUPABASE_PG_BINDIR": "/usr/lib/postgresql/15/bin",
            "HOME": "/root",
        }
    )
    assert dict(snapshot) == {
        "SUPABASE_URL": "https://x.supabase.co",
        "SUPABASE_KEY": SECRET,
        "PARLANT_SUPABASE_PG_BINDIR": "/usr/lib/postgresql/15/bin",
    }
    assert snapshot.get("SUPABASE_SCHEMA") is None
    assert snapshot.get("HOME") is None
    assert "SUPABASE_KEY" in snapshot
    assert len(snapshot) == 3
    assert set(ENVIRONMENT_VARIABLES) >= {
        "SUPABASE_URL",
        "SUPABASE_KEY",
        "SUPABASE_SCHEMA",
        "PARLANT_SUPABASE_ALLOW_HTTP",
        "PARLANT_SUPABASE_MAX_WORKERS",
        "PARLANT_SUPABASE_HTTP_POOL_SIZE",
        "PARLANT_SUPABASE_PG_BINDIR",
    }


def test_read_environment_hides_the_key_in_its_repr() -> None:
    from parlant_supabase_sync.settings import read_environment

    snapshot = read_environment({"SUPABASE_URL": "https://x.supabase.co", "SUPABASE_KEY": SECRET})
    assert "AbCdEfGhIj" not in repr(snapshot)
    assert "AbCdEfGhIj" not in str(snapshot)
    assert "SUPABASE_KEY" in repr(snapshot)
    assert "https://x.supabase.co" in repr(snapshot)


def test_read_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    from parlant_supabase_sync.settings import read_environment

    monkeypatch.setenv("SUPABASE_SCHEMA", "api")
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    snapshot = read_environment()
    assert snapshot.get("SUPABASE_SCHEMA") == "api"
    assert "SUPABASE_URL" not in snapshot


def test_every_settings_variable_is_listed() -> None:
    from parlant_supabase_sync.settings import ENVIRONMENT_VARIABLES

    settings_variables = {
        name for name, what in ENVIRONMENT_VARIABLES.items() if what.startswith("SupabaseSettings.")
    }
    for name in settings_variables:
        field = ENVIRONMENT_VARIABLES[name].removeprefix("SupabaseSettings.").split(".")[0]
        assert field in SupabaseSettings.model_fields, name
    # from_env reads each of them (blank means unset).
    assert SupabaseSettings.from_env(env(SUPABASE_SCHEMA="  ")).db_schema == "public"


def test_with_schema_checks_the_name_and_keeps_everything_else() -> None:
    settings = SupabaseSettings.from_env(env(PARLANT_SUPABASE_MAX_WORKERS="4"))
    moved = settings.with_schema("parlant")
    assert moved.db_schema == "parlant" and settings.db_schema == "public"
    assert moved.model_dump(exclude={"db_schema"}) == settings.model_dump(exclude={"db_schema"})
    assert moved.key.get_secret_value() == SECRET
    with pytest.raises(ConfigurationError, match="SUPABASE_SCHEMA"):
        settings.with_schema("no spaces")


def test_the_vector_store_comes_from_the_environment_and_is_checked() -> None:
    assert SupabaseSettings.from_env(env()).vector_store == "memory"
    chosen = SupabaseSettings.from_env(env(PARLANT_SUPABASE_VECTOR_STORE="supabase"))
    assert chosen.vector_store == "supabase"
    with pytest.raises(ConfigurationError, match="PARLANT_SUPABASE_VECTOR_STORE") as info:
        SupabaseSettings.from_env(env(PARLANT_SUPABASE_VECTOR_STORE="pgvector"))
    assert "'memory' or 'supabase'" in str(info.value) and "\n" not in str(info.value)
