"""Gateway auth: the Supabase API-key table (supabase-keys.md §5) and PostgREST's JWT layer
(postgrest-protocol.md §10.1).

Most tests run a `Gateway` whose executor echoes the `ApiRequest` it was handed (role, claims,
the Authorization PostgREST would see), so they assert exactly what crosses the auth layer. The
end-to-end class at the bottom goes through the real engine and database of `local_supabase`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from parlant_supabase_sync.local.bootstrap import AUTHENTICATOR
from parlant_supabase_sync.local.engine import ApiRequest, ApiResponse, EngineConfig
from parlant_supabase_sync.local.gateway import ApiKeys, Gateway, GatewayConfig

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
USER_ID = "9b0c6f52-7d5e-4d7e-9a53-5d7c3c1f0a11"
NO_KEY = {"message": "No API key found in request", "hint": "No `apikey` request header or url param was found."}
BAD_KEY = {"message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key."}


def echo_executor(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
    """Stands in for the engine: answers with what the auth layer handed over."""
    payload = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": dict(request.headers),
        "role": request.role,
        "claims": request.claims,
    }
    return ApiResponse(200, [("Content-Type", "application/json")], json.dumps(payload).encode())


def b64(obj: Any) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(secret: str, header: Any, payload: Any) -> str:
    """A token signed with HMAC-SHA256 whatever `header` claims (to build odd tokens)."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    digest = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(digest)}"


def user_token(secret: str, **claims: Any) -> str:
    now = int(time.time())
    base = {"sub": USER_ID, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 600}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, secret, algorithm="HS256")


class Keys:
    def __init__(self, stack: Any) -> None:
        self.anon: str = stack.anon_key
        self.service_role: str = stack.service_role_key
        self.publishable: str = stack.publishable_key
        self.secret: str = stack.secret_key
        self.jwt_secret: str = stack.jwt_secret

    def all(self) -> list[str]:
        return [self.anon, self.service_role, self.publishable, self.secret, self.jwt_secret]


@pytest.fixture(scope="module")
def keys(local_supabase: Any) -> Keys:
    return Keys(local_supabase)


GatewayFactory = Callable[..., Gateway]


@pytest.fixture(scope="module")
def make_gateway(local_supabase: Any, keys: Keys) -> Iterator[GatewayFactory]:
    started: list[Gateway] = []

    def make(executor: Any = echo_executor, **overrides: Any) -> Gateway:
        config = GatewayConfig(
            database_url=local_supabase.postgres.dsn(AUTHENTICATOR),
            jwt_secret=keys.jwt_secret,
            api_keys=ApiKeys(anon=keys.anon, service_role=keys.service_role,
                             publishable=keys.publishable, secret=keys.secret),
            pool_size=2,
            **overrides,
        )
        gateway = Gateway(config, executor=executor)
        gateway.start()
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.stop()


@pytest.fixture(scope="module")
def gateway(make_gateway: GatewayFactory) -> Gateway:
    return make_gateway()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as c:
        yield c


def call(client: httpx.Client, gateway: Gateway, *, apikey: str | None = None, bearer: str | None = None,
         path: str = "/rest/v1/docs", headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    sent = dict(headers or {})
    if apikey is not None:
        sent["apikey"] = apikey
    if bearer is not None:
        sent["Authorization"] = f"Bearer {bearer}"
    return client.get(gateway.url + path, headers=sent, **kw)


def echoed(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def assert_gateway_401(resp: httpx.Response, body: dict[str, str]) -> None:
    assert resp.status_code == 401
    assert resp.json() == body
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert "www-authenticate" not in resp.headers


def assert_jwt_error(resp: httpx.Response, code: str, message: str, details: str | None = None) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.json() == {"code": code, "details": details, "hint": None, "message": message}
    assert resp.headers["www-authenticate"] == f'Bearer error="invalid_token", error_description="{message}"'
    assert resp.headers["proxy-status"] == f"PostgREST; error={code}"


def decode_forwarded(resp: httpx.Response, secret: str) -> dict[str, Any]:
    """The claims of the JWT the gateway forwarded in Authorization (verified with PyJWT)."""
    auth = echoed(resp)["headers"]["authorization"]
    assert auth.startswith("Bearer ")
    claims: dict[str, Any] = jwt.decode(auth[len("Bearer "):], secret, algorithms=["HS256"])
    return claims


# --- supabase-keys.md §5 ----------------------------------------------------------------------


class TestRow1MissingKey:
    def test_no_apikey_is_401_no_api_key_found(self, client: httpx.Client, gateway: Gateway) -> None:
        assert_gateway_401(call(client, gateway), NO_KEY)

    def test_empty_apikey_is_401_no_api_key_found(self, client: httpx.Client, gateway: Gateway) -> None:
        assert_gateway_401(call(client, gateway, apikey=""), NO_KEY)

    def test_a_valid_bearer_token_does_not_replace_the_apikey(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        assert_gateway_401(call(client, gateway, bearer=keys.service_role), NO_KEY)

    def test_rest_root_needs_a_key_too(self, client: httpx.Client, gateway: Gateway) -> None:
        assert_gateway_401(call(client, gateway, path="/rest/v1"), NO_KEY)
        assert_gateway_401(call(client, gateway, path="/rest/v1/"), NO_KEY)


class TestRow2UnknownKey:
    @pytest.mark.parametrize("kind", ["opaque", "foreign_jwt", "user_jwt", "truncated_secret"])
    def test_a_key_that_is_not_configured_is_401_invalid_api_key(
        self, client: httpx.Client, gateway: Gateway, keys: Keys, kind: str
    ) -> None:
        key = {
            "opaque": "sb_publishable_" + "A" * 22 + "_0123abcd",
            "foreign_jwt": jwt.encode({"role": "service_role"}, "x" * 40, algorithm="HS256"),
            # correctly signed with the project secret, but not one of the project's keys
            "user_jwt": user_token(keys.jwt_secret),
            "truncated_secret": keys.secret[:-1],
        }[kind]
        assert_gateway_401(call(client, gateway, apikey=key, bearer=key), BAD_KEY)

    def test_non_ascii_key_is_an_unknown_key_not_a_crash(self, gateway: Gateway) -> None:
        with httpx.Client() as c:
            resp = c.get(gateway.url + "/rest/v1/docs", headers={b"apikey": "sb_sécret".encode()})
        assert_gateway_401(resp, BAD_KEY)


@pytest.fixture(scope="module")
def no_legacy(make_gateway: GatewayFactory) -> Gateway:
    return make_gateway(legacy_keys_enabled=False)


@pytest.fixture(scope="module")
def kong(make_gateway: GatewayFactory) -> Gateway:
    return make_gateway(kong_mode=True)


class TestRow3LegacyKeysDisabled:
    @pytest.mark.parametrize("which", ["anon", "service_role"])
    def test_legacy_keys_are_refused(
        self, client: httpx.Client, no_legacy: Gateway, keys: Keys, which: str
    ) -> None:
        key = getattr(keys, which)
        resp = call(client, no_legacy, apikey=key, bearer=key)
        assert_gateway_401(resp, {"message": "Legacy API keys are disabled"})

    def test_opaque_keys_still_work(self, client: httpx.Client, no_legacy: Gateway, keys: Keys) -> None:
        assert echoed(call(client, no_legacy, apikey=keys.secret))["role"] == "service_role"
        assert echoed(call(client, no_legacy, apikey=keys.publishable))["role"] == "anon"

    def test_a_legacy_jwt_as_bearer_still_verifies(
        self, client: httpx.Client, no_legacy: Gateway, keys: Keys
    ) -> None:
        resp = call(client, no_legacy, apikey=keys.publishable, bearer=keys.service_role)
        assert echoed(resp)["role"] == "service_role"


class TestRow4SecretKeyInBrowser:
    def test_secret_key_with_a_mozilla_user_agent_is_refused(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        resp = call(client, gateway, apikey=keys.secret, headers={"User-Agent": BROWSER_UA})
        assert resp.status_code == 401
        assert resp.headers["sb-error-code"] == "UNAUTHORIZED_INVALID_API_KEY_TYPE"
        assert resp.json() == {
            "message": "Forbidden use of secret API key in browser",
            "hint": "Secret API keys can only be used in a protected environment and should never be used "
            "in a browser. Delete this secret API key immediately!",
        }

    def test_checked_before_the_bearer_rules(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        user = user_token(keys.jwt_secret)
        for bearer in (keys.secret, user, keys.service_role):
            resp = call(client, gateway, apikey=keys.secret, bearer=bearer, headers={"User-Agent": BROWSER_UA})
            assert resp.headers.get("sb-error-code") == "UNAUTHORIZED_INVALID_API_KEY_TYPE"

    def test_publishable_and_legacy_keys_are_not_checked(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        ua = {"User-Agent": BROWSER_UA}
        assert echoed(call(client, gateway, apikey=keys.publishable, headers=ua))["role"] == "anon"
        assert echoed(call(client, gateway, apikey=keys.service_role, headers=ua))["role"] == "service_role"

    def test_non_browser_user_agents_pass(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        for ua in ("curl/8.5.0", "python-httpx/0.28.1", "Macintosh Mozilla/5.0"):
            resp = call(client, gateway, apikey=keys.secret, headers={"User-Agent": ua})
            assert echoed(resp)["role"] == "service_role"

    def test_unknown_key_is_row_2_even_in_a_browser(self, client: httpx.Client, gateway: Gateway) -> None:
        resp = call(client, gateway, apikey="sb_secret_nope", headers={"User-Agent": BROWSER_UA})
        assert_gateway_401(resp, BAD_KEY)


class TestRow5OpaqueKeyMintsARoleJwt:
    @pytest.mark.parametrize(("which", "role"), [("publishable", "anon"), ("secret", "service_role")])
    @pytest.mark.parametrize("bearer", ["absent", "same", "same_lowercase_scheme"])
    def test_role_of_the_key(
        self, client: httpx.Client, gateway: Gateway, keys: Keys, which: str, role: str, bearer: str
    ) -> None:
        key = getattr(keys, which)
        headers = {
            "absent": {},
            "same": {"Authorization": f"Bearer {key}"},
            "same_lowercase_scheme": {"Authorization": f"bearer {key}"},
        }[bearer]
        resp = call(client, gateway, apikey=key, headers=headers)
        echo = echoed(resp)
        assert echo["role"] == role
        assert echo["claims"]["role"] == role

    def test_minted_jwt_is_short_lived_hs256_with_supabase_claims(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        resp = call(client, gateway, apikey=keys.secret, bearer=keys.secret)
        claims = decode_forwarded(resp, keys.jwt_secret)
        assert claims["role"] == "service_role" and claims["iss"] == "supabase"
        assert 0 < claims["exp"] - claims["iat"] <= 3600
        assert claims["exp"] > time.time()
        assert echoed(resp)["claims"] == claims  # what request.jwt.claims will hold

    def test_the_opaque_key_never_reaches_postgrest_as_a_credential(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        echo = echoed(call(client, gateway, apikey=keys.publishable, bearer=keys.publishable))
        assert keys.publishable not in echo["headers"]["authorization"]
        assert echo["headers"]["apikey"] == keys.publishable  # forwarded as Kong does


class TestRow6DifferentOpaqueBearer:
    def test_unequal_sb_bearer_reaches_postgrest_and_fails_as_a_jwt(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        resp = call(client, gateway, apikey=keys.publishable, bearer=keys.secret)
        assert_jwt_error(resp, "PGRST301", "Expected 3 parts in JWT; got 1")

    def test_unknown_sb_bearer_with_a_valid_secret_key(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        resp = call(client, gateway, apikey=keys.secret, bearer="sb_secret_" + "B" * 22 + "_00000000")
        assert_jwt_error(resp, "PGRST301", "Expected 3 parts in JWT; got 1")


class TestRow7BearerJwtWins:
    def test_publishable_key_with_a_user_jwt_is_authenticated(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        token = user_token(keys.jwt_secret, email="u@example.test")
        echo = echoed(call(client, gateway, apikey=keys.publishable, bearer=token))
        assert echo["role"] == "authenticated"
        assert echo["claims"]["sub"] == USER_ID and echo["claims"]["email"] == "u@example.test"
        assert echo["headers"]["authorization"] == f"Bearer {token}"

    def test_secret_key_with_a_user_jwt_drops_to_authenticated(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        echo = echoed(call(client, gateway, apikey=keys.secret, bearer=user_token(keys.jwt_secret)))
        assert echo["role"] == "authenticated"

    def test_service_role_jwt_wins_over_an_anon_apikey(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        assert echoed(call(client, gateway, apikey=keys.anon, bearer=keys.service_role))["role"] == "service_role"
        assert echoed(call(client, gateway, apikey=keys.publishable, bearer=keys.service_role))["role"] == (
            "service_role"
        )

    def test_non_bearer_authorization_is_anonymous(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        resp = call(client, gateway, apikey=keys.service_role, headers={"Authorization": "Basic dXNlcjpwdw=="})
        echo = echoed(resp)
        assert echo["role"] == "anon" and echo["claims"] == {"role": "anon"}


class TestRow8LegacyKeyWithoutBearer:
    @pytest.mark.parametrize(("which", "role"), [("anon", "anon"), ("service_role", "service_role")])
    def test_the_key_itself_becomes_the_bearer(
        self, client: httpx.Client, gateway: Gateway, keys: Keys, which: str, role: str
    ) -> None:
        key = getattr(keys, which)
        echo = echoed(call(client, gateway, apikey=key))
        assert echo["role"] == role
        assert echo["headers"]["authorization"] == f"Bearer {key}"
        assert echo["claims"]["iss"] == "supabase" and echo["claims"]["role"] == role


class TestApiKeySources:
    @pytest.mark.parametrize("name", ["apiKey", "APIKEY", "ApiKey"])
    def test_header_name_is_case_insensitive(
        self, client: httpx.Client, gateway: Gateway, keys: Keys, name: str
    ) -> None:
        resp = client.get(gateway.url + "/rest/v1/docs", headers={name: keys.secret})
        assert echoed(resp)["role"] == "service_role"

    def test_query_parameter_fallback_is_used_and_removed(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        with gateway.requests.capture() as cap:
            resp = client.get(gateway.url + "/rest/v1/docs",
                              params=[("select", "id"), ("apikey", keys.publishable), ("id", "eq.1")])
        echo = echoed(resp)
        assert echo["role"] == "anon"
        assert echo["query"] == [["select", "id"], ["id", "eq.1"]]
        (entry,) = cap.entries()
        assert keys.publishable not in entry.query
        assert entry.query.startswith("select=id&apikey=sb_pub") and entry.query.endswith("&id=eq.1")

    def test_header_wins_over_the_query_parameter(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        resp = client.get(gateway.url + "/rest/v1/docs", params={"apikey": keys.publishable},
                          headers={"apikey": keys.secret})
        echo = echoed(resp)
        assert echo["role"] == "service_role" and echo["query"] == []

    def test_unknown_key_in_the_query_is_401(self, client: httpx.Client, gateway: Gateway) -> None:
        resp = client.get(gateway.url + "/rest/v1/docs", params={"apikey": "nope"})
        assert_gateway_401(resp, BAD_KEY)


class TestKongMode:
    def test_any_sb_bearer_is_overwritten_with_the_keys_role(
        self, client: httpx.Client, kong: Gateway, keys: Keys
    ) -> None:
        echo = echoed(call(client, kong, apikey=keys.publishable, bearer=keys.secret))
        assert echo["role"] == "anon"
        assert keys.secret not in json.dumps(echo["headers"]["authorization"])

    def test_legacy_apikey_replaces_an_sb_bearer(self, client: httpx.Client, kong: Gateway, keys: Keys) -> None:
        echo = echoed(call(client, kong, apikey=keys.service_role, bearer="sb_secret_whatever"))
        assert echo["role"] == "service_role"
        assert echo["headers"]["authorization"] == f"Bearer {keys.service_role}"

    def test_jwt_bearer_is_kept(self, client: httpx.Client, kong: Gateway, keys: Keys) -> None:
        echo = echoed(call(client, kong, apikey=keys.secret, bearer=user_token(keys.jwt_secret)))
        assert echo["role"] == "authenticated"


# --- postgrest-protocol.md §10.1 --------------------------------------------------------------


class TestJwtErrors:
    """apikey is the valid legacy service key; the Bearer value is what PostgREST verifies."""

    def check(self, client: httpx.Client, gateway: Gateway, keys: Keys, authorization: str, code: str,
              message: str, details: str | None = None) -> httpx.Response:
        resp = call(client, gateway, apikey=keys.service_role, headers={"Authorization": authorization})
        assert_jwt_error(resp, code, message, details)
        return resp

    def test_empty_token(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        resp = self.check(client, gateway, keys, "Bearer", "PGRST301", "Empty JWT is sent in Authorization header")
        # byte for byte what PostgREST sends (its spec asserts Content-Length 100)
        assert resp.content == (
            b'{"code":"PGRST301","details":null,"hint":null,'
            b'"message":"Empty JWT is sent in Authorization header"}'
        )
        assert resp.headers["content-length"] == "100"

    @pytest.mark.parametrize("parts", [2, 4, 5])
    def test_wrong_number_of_parts(self, client: httpx.Client, gateway: Gateway, keys: Keys, parts: int) -> None:
        token = ".".join(["eyJhbGciOiJIUzI1NiJ9"] * parts)
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST301", f"Expected 3 parts in JWT; got {parts}")

    def test_wrong_secret(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        token = jwt.encode({"role": "service_role"}, "w" * 40, algorithm="HS256")
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST301", "No suitable key or wrong key type",
                   "None of the keys was able to decode the JWT")

    def test_tampered_payload(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        header, _, signature = user_token(keys.jwt_secret).split(".")
        forged = f"{header}.{b64({'role': 'service_role'})}.{signature}"
        self.check(client, gateway, keys, f"Bearer {forged}", "PGRST301", "No suitable key or wrong key type",
                   "None of the keys was able to decode the JWT")

    @pytest.mark.parametrize("token", [
        "quifquirndsjagnrgniur.fonvoienqhhdj.iuqvnvhojah",  # PostgREST's own spec case
        "aaa.bbb.ccc",
        f"{b64({'alg': 'HS999'})}.{b64({})}.{b64(b'x')}",  # unknown algorithm
        f"{b64({'typ': 'JWT'})}.{b64({})}.{b64(b'x')}",  # no alg at all
        f"{b64([1, 2])}.{b64({})}.{b64(b'x')}",  # header not an object
        f"{b64({'alg': 'HS256'})}=.{b64({})}.{b64(b'x')}",  # padding is not base64url-unpadded
        f"{b64({'alg': 'HS256'})}.{b64({})}.a+b/",  # standard-base64 characters
    ])
    def test_garbage_segments(self, client: httpx.Client, gateway: Gateway, keys: Keys, token: str) -> None:
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST301", "JWT cryptographic operation failed")

    def test_alg_none_is_rejected(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.e30.yOBhlOIqn56T-4NvyEXCjfi3UmyQZ-BzXtePMO2NgRI"
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST301", "Wrong or unsupported encoding algorithm",
                   "JWT is unsecured but expected 'alg' was not 'none'")
        unsigned = f"{b64({'alg': 'none'})}.{b64({'role': 'service_role'})}."
        self.check(client, gateway, keys, f"Bearer {unsigned}", "PGRST301", "Wrong or unsupported encoding algorithm",
                   "JWT is unsecured but expected 'alg' was not 'none'")

    @pytest.mark.parametrize("header", [{"alg": "HS512"}, {"alg": "RS256"}, {"alg": "HS256", "kid": "k1"}])
    def test_tokens_no_key_can_decode(
        self, client: httpx.Client, gateway: Gateway, keys: Keys, header: dict[str, str]
    ) -> None:
        # HS512 signed with the right secret still fails: the secret is an HS256-only key.
        token = jwt.encode({"role": "service_role"}, keys.jwt_secret, algorithm="HS512") \
            if header == {"alg": "HS512"} else sign(keys.jwt_secret, header, {"role": "service_role"})
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST301", "No suitable key or wrong key type",
                   "No suitable key was found to decode the JWT")

    @pytest.mark.parametrize("payload", [b"[1, 2]", b"not json", b'{"exp": NaN}'])
    def test_signed_payload_that_is_not_a_json_object(
        self, client: httpx.Client, gateway: Gateway, keys: Keys, payload: bytes
    ) -> None:
        token = sign(keys.jwt_secret, {"alg": "HS256", "typ": "JWT"}, payload)
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST303", "Parsing claims failed")

    def test_expired_beyond_the_30_second_skew(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        now = int(time.time())
        token = user_token(keys.jwt_secret, iat=now - 600, exp=now - 45)
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST303", "JWT expired")

    def test_expired_within_the_skew_is_accepted(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        now = int(time.time())
        token = user_token(keys.jwt_secret, iat=now - 600, exp=now - 15)
        assert echoed(call(client, gateway, apikey=keys.anon, bearer=token))["role"] == "authenticated"

    def test_not_yet_valid(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        token = user_token(keys.jwt_secret, nbf=int(time.time()) + 90)
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST303", "JWT not yet valid")
        token = user_token(keys.jwt_secret, nbf=int(time.time()) + 15)
        assert echoed(call(client, gateway, apikey=keys.anon, bearer=token))["role"] == "authenticated"

    def test_issued_in_the_future(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        token = user_token(keys.jwt_secret, iat=int(time.time()) + 90)
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST303", "JWT issued at future")

    def test_exp_is_checked_before_nbf_and_iat(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        now = int(time.time())
        token = user_token(keys.jwt_secret, exp=now - 3600, nbf=now + 3600, iat=now + 3600)
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST303", "JWT expired")

    @pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
    @pytest.mark.parametrize("value", ["invalid", True, [1]])
    def test_time_claims_must_be_numbers(
        self, client: httpx.Client, gateway: Gateway, keys: Keys, claim: str, value: Any
    ) -> None:
        token = sign(keys.jwt_secret, {"alg": "HS256"}, {"role": "authenticated", claim: value})
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST303", f"The JWT '{claim}' claim must be a number")

    def test_fractional_exp_counts_as_zero_like_postgrest(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        token = sign(keys.jwt_secret, {"alg": "HS256"}, {"role": "authenticated", "exp": time.time() + 600.5})
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST303", "JWT expired")

    def test_null_time_claims_are_ignored(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        token = sign(keys.jwt_secret, {"alg": "HS256"}, {"role": "authenticated", "exp": None, "nbf": None})
        assert echoed(call(client, gateway, apikey=keys.anon, bearer=token))["role"] == "authenticated"

    @pytest.mark.parametrize("aud", [{"x": 1}, [{"x": 1}, "test"], 5])
    def test_aud_must_be_a_string_or_array_of_strings(
        self, client: httpx.Client, gateway: Gateway, keys: Keys, aud: Any
    ) -> None:
        token = sign(keys.jwt_secret, {"alg": "HS256"}, {"role": "authenticated", "aud": aud})
        self.check(client, gateway, keys, f"Bearer {token}", "PGRST303",
                   "The JWT 'aud' claim must be a string or an array of strings")

    @pytest.mark.parametrize("aud", ["anything", ["a", "b"], []])
    def test_any_audience_matches_without_jwt_aud(
        self, client: httpx.Client, gateway: Gateway, keys: Keys, aud: Any
    ) -> None:
        token = user_token(keys.jwt_secret, aud=aud)
        assert echoed(call(client, gateway, apikey=keys.anon, bearer=token))["role"] == "authenticated"


class TestJwtRoles:
    def test_missing_role_claim_runs_as_anon_and_role_is_added(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        token = user_token(keys.jwt_secret, role=None)
        echo = echoed(call(client, gateway, apikey=keys.anon, bearer=token))
        assert echo["role"] == "anon"
        assert echo["claims"]["role"] == "anon" and echo["claims"]["sub"] == USER_ID

    def test_anonymous_request_has_only_the_role_claim(
        self, client: httpx.Client, gateway: Gateway, keys: Keys
    ) -> None:
        echo = echoed(call(client, gateway, apikey=keys.anon, headers={"Authorization": "Token abc"}))
        assert echo["role"] == "anon"
        assert echo["claims"] == {"role": "anon"}
        assert echo["headers"]["authorization"] == "Token abc"

    def test_scheme_is_case_insensitive(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        token = user_token(keys.jwt_secret)
        for scheme in ("bearer", "BEARER", "BeArEr"):
            resp = call(client, gateway, apikey=keys.anon, headers={"Authorization": f"{scheme} {token}"})
            assert echoed(resp)["role"] == "authenticated"

    def test_custom_role_claim_is_passed_on(self, client: httpx.Client, gateway: Gateway, keys: Keys) -> None:
        token = user_token(keys.jwt_secret, role="some_app_role")
        assert echoed(call(client, gateway, apikey=keys.anon, bearer=token))["role"] == "some_app_role"

    def test_anonymous_access_disabled_is_pgrst302(
        self, client: httpx.Client, make_gateway: GatewayFactory, keys: Keys
    ) -> None:
        no_anon = make_gateway(engine=EngineConfig(anon_role=""))
        resp = call(client, no_anon, apikey=keys.anon, headers={"Authorization": "Basic x"})
        assert resp.status_code == 401
        assert resp.json() == {"code": "PGRST302", "details": None, "hint": None,
                               "message": "Anonymous access is disabled"}
        assert resp.headers["www-authenticate"] == "Bearer"
        # a JWT with a role still works
        assert echoed(call(client, no_anon, apikey=keys.anon, bearer=keys.anon))["role"] == "anon"


# --- secrets stay out of logs -----------------------------------------------------------------


class TestSecretsStayOutOfLogs:
    def test_no_key_or_token_in_log_records_or_request_log(
        self, client: httpx.Client, make_gateway: GatewayFactory, keys: Keys, caplog: pytest.LogCaptureFixture
    ) -> None:
        def failing(conn: psycopg.Connection[Any], request: ApiRequest, config: EngineConfig) -> ApiResponse:
            raise RuntimeError("engine bug")

        user = user_token(keys.jwt_secret)
        caplog.set_level(logging.DEBUG)
        echo_gw = make_gateway()
        failing_gw = make_gateway(executor=failing)
        with echo_gw.requests.capture() as cap_echo, failing_gw.requests.capture() as cap_fail:
            for gw in (echo_gw, failing_gw):
                for apikey in (keys.anon, keys.service_role, keys.publishable, keys.secret, "sb_secret_unknown"):
                    for bearer in (None, apikey, user, "garbage.token.x", keys.secret):
                        call(client, gw, apikey=apikey, bearer=bearer)
                        call(client, gw, path=f"/rest/v1/docs?apikey={apikey}", bearer=bearer)
                    call(client, gw, apikey=apikey, headers={"User-Agent": BROWSER_UA})
        ours = [r for r in caplog.records if r.name.startswith(("parlant_supabase_sync", "psycopg"))]
        assert any(r.levelno >= logging.ERROR for r in ours)  # the engine failure was logged
        assert len(cap_echo) == len(cap_fail) > 50
        logged = "\n".join(r.getMessage() + "\n" + (r.exc_text or "") for r in ours)
        logged += repr(cap_echo.entries()) + repr(cap_fail.entries())
        # (httpx's own records quote the URLs it requested, query included: not ours to vet)
        for secret in [*keys.all(), user]:
            assert secret not in logged
            assert secret[7:] not in logged  # not even a long tail of it

    def test_reprs_hide_the_keys(self, keys: Keys, gateway: Gateway) -> None:
        config = GatewayConfig(
            database_url="postgresql://authenticator@127.0.0.1:1/postgres", jwt_secret=keys.jwt_secret,
            api_keys=ApiKeys(anon=keys.anon, service_role=keys.service_role,
                             publishable=keys.publishable, secret=keys.secret),
        )
        shown = repr(config) + str(config.api_keys) + repr(gateway)
        for secret in keys.all():
            assert secret not in shown


# --- end to end through the real engine -------------------------------------------------------


WHOAMI = "gateway_auth_whoami"


@pytest.fixture(scope="module")
def stack(local_supabase: Any) -> Any:
    local_supabase.execute_sql(f"""
        create or replace function public.{WHOAMI}() returns jsonb language sql stable as $$
          select jsonb_build_object('user', current_user,
                                    'claims', current_setting('request.jwt.claims', true)::jsonb)
        $$;
        grant execute on function public.{WHOAMI}() to anon, authenticated, service_role;
        notify pgrst, 'reload schema';
    """)
    return local_supabase


class TestThroughTheEngine:
    @pytest.mark.parametrize(("which", "role"), [
        ("anon", "anon"), ("service_role", "service_role"), ("publishable", "anon"), ("secret", "service_role"),
    ])
    def test_supabase_py_client_runs_as_the_keys_role(self, stack: Any, which: str, role: str) -> None:
        from supabase import ClientOptions, create_client

        # With an httpx client of its own (as the adapter passes one) supabase-py sends no
        # deprecated timeout/verify arguments to postgrest.
        with httpx.Client() as http:
            options = ClientOptions(httpx_client=http)
            client = create_client(stack.url, getattr(stack, f"{which}_key"), options)
            data: Any = client.rpc(WHOAMI).execute().data
        assert data["user"] == role

    def test_publishable_key_with_user_jwt_is_authenticated(self, stack: Any) -> None:
        token = user_token(stack.jwt_secret, sub=str(uuid.uuid4()))
        with httpx.Client() as c:
            resp = c.post(f"{stack.url}/rest/v1/rpc/{WHOAMI}", json={},
                          headers={"apikey": stack.publishable_key, "Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["user"] == "authenticated"

    def test_mismatching_opaque_bearer_is_pgrst301_from_the_real_stack(self, stack: Any) -> None:
        with httpx.Client() as c:
            resp = c.post(f"{stack.url}/rest/v1/rpc/{WHOAMI}", json={},
                          headers={"apiKey": stack.publishable_key, "Authorization": f"Bearer {stack.secret_key}"})
        assert_jwt_error(resp, "PGRST301", "Expected 3 parts in JWT; got 1")
