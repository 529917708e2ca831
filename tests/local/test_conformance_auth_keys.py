"""Conformance: JWT verification, role switching, request GUCs, 401/403 for 42501, RLS
(postgrest-protocol.md §10) and the Supabase API-key gateway rules (supabase-keys.md §5 rows 1-8).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from pgrst_helpers import (
    Rest,
    assert_error,
    ids,
    mint_jwt,
    ok_json,
    raw_request,
    reset_rows,
    sql_rows,
    user_jwt,
    wait_until_visible,
)

SECRET_T = "conf_auth_secret"
NOTES = "conf_auth_notes"
OUTSIDER = "conf_auth_outsider"
U1 = "11111111-1111-1111-1111-111111111111"
U2 = "22222222-2222-2222-2222-222222222222"
BROWSER_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"

DDL = f"""
drop table if exists public.{SECRET_T};
create table public.{SECRET_T} (id int primary key);
insert into public.{SECRET_T} values (1);
revoke all on table public.{SECRET_T} from anon, authenticated;
grant all on table public.{SECRET_T} to service_role;

drop table if exists public.{NOTES};
create table public.{NOTES} (id int primary key, owner uuid, body text);
grant all on table public.{NOTES} to anon, authenticated, service_role;
alter table public.{NOTES} enable row level security;
create policy conf_sel on public.{NOTES} for select to authenticated using (owner = auth.uid());
create policy conf_ins on public.{NOTES} for insert to authenticated with check (owner = auth.uid());
create policy conf_upd on public.{NOTES} for update to authenticated using (owner = auth.uid());
create policy conf_del on public.{NOTES} for delete to authenticated using (owner = auth.uid());

do $$ begin
  if not exists (select from pg_roles where rolname = '{OUTSIDER}') then
    create role {OUTSIDER} nologin;
  end if;
end $$;

-- plpgsql so that a missing auth.* helper fails the call, not the fixture
create or replace function public.conf_auth_whoami() returns jsonb
  language plpgsql stable as $$
  begin
    return jsonb_build_object(
      'user', current_user,
      'claims', nullif(current_setting('request.jwt.claims', true), '')::jsonb,
      'method', current_setting('request.method', true),
      'path', current_setting('request.path', true),
      'headers', nullif(current_setting('request.headers', true), '')::jsonb,
      'cookies', nullif(current_setting('request.cookies', true), '')::jsonb,
      'timeout', current_setting('statement_timeout'),
      'tz', current_setting('TimeZone'));
  end $$;
create or replace function public.conf_auth_helpers() returns jsonb
  language plpgsql stable as $$
  begin
    return jsonb_build_object('uid', auth.uid(), 'role', auth.role(), 'jwt', auth.jwt());
  end $$;
create or replace function public.conf_auth_sleep(seconds float) returns int
  language plpgsql volatile as $$ begin perform pg_sleep(seconds); return 1; end $$;
create or replace function public.conf_auth_private_fn(name text) returns text
  language sql stable as $$ select 'Privileged hello to ' || name $$;
revoke all on function public.conf_auth_private_fn(text) from public, anon;
grant execute on function public.conf_auth_private_fn(text) to authenticated, service_role;
drop table if exists public.conf_auth_dropbox;
create table public.conf_auth_dropbox (id int primary key, body text);
revoke all on table public.conf_auth_dropbox from anon, authenticated;
grant insert on table public.conf_auth_dropbox to anon, authenticated;
grant all on table public.conf_auth_dropbox to service_role;
grant execute on function public.conf_auth_whoami(), public.conf_auth_helpers(),
  public.conf_auth_sleep(float) to anon, authenticated, service_role;
notify pgrst, 'reload schema';
"""

NOTE_ROWS = [
    {"id": 1, "owner": U1, "body": "u1 a"},
    {"id": 2, "owner": U1, "body": "u1 b"},
    {"id": 3, "owner": U2, "body": "u2"},
]


@pytest.fixture(scope="module")
def stack(local_supabase):  # type: ignore[no-untyped-def]
    local_supabase.execute_sql(DDL)
    return local_supabase


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20.0) as client:
        yield client


@pytest.fixture(scope="module")
def service(stack, http: httpx.Client) -> Rest:  # type: ignore[no-untyped-def]
    rest = Rest(stack.url, stack.service_role_key, client=http)
    wait_until_visible(rest, f"/{NOTES}")
    wait_until_visible(rest, "/rpc/conf_auth_whoami", method="POST", json_body={})
    return rest


@pytest.fixture
def notes(stack, service: Rest) -> Rest:  # type: ignore[no-untyped-def]
    reset_rows(stack, NOTES, NOTE_ROWS)
    return service


def as_key(stack: Any, http: httpx.Client, key: str | None, bearer: str | None = None, **kw: Any) -> Rest:
    """A client with ``apikey: key`` and, if given, ``Authorization: Bearer <bearer>``."""
    return Rest(stack.url, key, bearer=bearer, client=http, **kw)


def whoami(rest: Rest, **kw: Any) -> dict[str, Any]:
    return ok_json(rest.post("/rpc/conf_auth_whoami", json_body={}, **kw))  # type: ignore[no-any-return]


def role_of(rest: Rest, **kw: Any) -> str:
    return str(whoami(rest, **kw)["user"])


def b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


# --- §10.1 JWT verification -------------------------------------------------------------------


class TestJwtErrors:
    """apikey is the valid service key; the Bearer token is what PostgREST verifies (row 7)."""

    def check(self, stack: Any, http: httpx.Client, token: str, code: str, message: str,
              details: Any = None) -> None:
        rest = as_key(stack, http, stack.service_role_key, bearer=token)
        resp = rest.get(f"/{NOTES}")
        assert_error(resp, 401, code, message=message, details=details, hint=None)
        assert resp.headers.get("www-authenticate") == (
            f'Bearer error="invalid_token", error_description="{message}"')

    def test_empty_token(self, stack: Any) -> None:
        # httpx refuses a header value with a trailing blank, so this one goes over a raw socket.
        message = "Empty JWT is sent in Authorization header"
        status, headers, body = raw_request(
            stack.url, "GET", f"/{NOTES}",
            [("apikey", stack.service_role_key), ("Authorization", "Bearer ")])
        assert status == 401, body
        assert json.loads(body) == {"code": "PGRST301", "message": message, "details": None, "hint": None}
        assert headers.get("www-authenticate") == f'Bearer error="invalid_token", error_description="{message}"'

    def test_two_parts(self, stack: Any, http: httpx.Client) -> None:
        self.check(stack, http, "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9", "PGRST301",
                   "Expected 3 parts in JWT; got 2")

    def test_wrong_key(self, stack: Any, http: httpx.Client) -> None:
        token = mint_jwt("x" * 40, {"role": "authenticated"})
        self.check(stack, http, token, "PGRST301", "No suitable key or wrong key type",
                   details="None of the keys was able to decode the JWT")

    def test_garbage_segments(self, stack: Any, http: httpx.Client) -> None:
        self.check(stack, http, "aaa.bbb.ccc", "PGRST301", "JWT cryptographic operation failed")

    def test_alg_none_is_rejected(self, stack: Any, http: httpx.Client) -> None:
        token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'role': 'service_role'})}."
        rest = as_key(stack, http, stack.service_role_key, bearer=token)
        # details as in PostgREST test/spec/Feature/Query/ErrorSpec.hs ("algorithm 'none'")
        assert_error(rest.get(f"/{NOTES}"), 401, "PGRST301",
                     message="Wrong or unsupported encoding algorithm",
                     details="JWT is unsecured but expected 'alg' was not 'none'")

    def test_expired(self, stack: Any, http: httpx.Client) -> None:
        now = int(time.time())
        token = mint_jwt(stack.jwt_secret, {"role": "authenticated", "iat": now - 600, "exp": now - 120})
        self.check(stack, http, token, "PGRST303", "JWT expired")

    def test_not_yet_valid(self, stack: Any, http: httpx.Client) -> None:
        token = mint_jwt(stack.jwt_secret, {"role": "authenticated", "nbf": int(time.time()) + 600})
        self.check(stack, http, token, "PGRST303", "JWT not yet valid")

    def test_issued_in_the_future(self, stack: Any, http: httpx.Client) -> None:
        token = mint_jwt(stack.jwt_secret, {"role": "authenticated", "iat": int(time.time()) + 600})
        self.check(stack, http, token, "PGRST303", "JWT issued at future")

    @pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
    def test_time_claims_must_be_numbers(self, stack: Any, http: httpx.Client, claim: str) -> None:
        token = mint_jwt(stack.jwt_secret, {"role": "authenticated", claim: "invalid"}, lifetime=None)
        rest = as_key(stack, http, stack.service_role_key, bearer=token)
        assert_error(rest.get(f"/{NOTES}"), 401, "PGRST303",
                     message=f"The JWT '{claim}' claim must be a number")

    def test_aud_must_be_a_string_or_array_of_strings(self, stack: Any, http: httpx.Client) -> None:
        token = mint_jwt(stack.jwt_secret, {"role": "authenticated", "aud": {"x": 1}})
        rest = as_key(stack, http, stack.service_role_key, bearer=token)
        assert_error(rest.get(f"/{NOTES}"), 401, "PGRST303",
                     message="The JWT 'aud' claim must be a string or an array of strings")

    def test_expiry_has_30_seconds_of_clock_skew(self, stack: Any, http: httpx.Client) -> None:
        now = int(time.time())
        token = mint_jwt(stack.jwt_secret, {"role": "authenticated", "sub": U1, "iat": now - 60,
                                            "exp": now - 10})
        assert role_of(as_key(stack, http, stack.service_role_key, bearer=token)) == "authenticated"

    def test_bearer_scheme_is_case_insensitive(self, stack: Any, http: httpx.Client) -> None:
        token = user_jwt(stack.jwt_secret, U1)
        rest = as_key(stack, http, stack.service_role_key, bearer=None,
                      headers={"Authorization": f"bearer {token}"})
        assert role_of(rest) == "authenticated"


# --- §10.2 role switching and GUCs ------------------------------------------------------------


class TestRoleSwitching:
    def test_service_role_key(self, stack: Any, service: Rest) -> None:
        me = whoami(service)
        assert me["user"] == "service_role"
        assert me["claims"]["role"] == "service_role"

    def test_anon_key(self, stack: Any, http: httpx.Client) -> None:
        me = whoami(as_key(stack, http, stack.anon_key, bearer=stack.anon_key))
        assert me["user"] == "anon"
        assert me["claims"]["role"] == "anon"

    def test_user_jwt_runs_as_authenticated_with_its_claims(self, stack: Any, http: httpx.Client) -> None:
        token = user_jwt(stack.jwt_secret, U1, email="u1@example.test")
        me = whoami(as_key(stack, http, stack.anon_key, bearer=token))
        assert me["user"] == "authenticated"
        assert me["claims"]["sub"] == U1 and me["claims"]["email"] == "u1@example.test"

    def test_auth_helpers_read_the_claims(self, stack: Any, http: httpx.Client) -> None:
        # Reference §10.4 marks "auth.uid() reads sub from request.jwt.claims" (unconfirmed); this
        # checks the stand-in's helpers do, which is what RLS policies below rely on.
        token = user_jwt(stack.jwt_secret, U1)
        rest = as_key(stack, http, stack.anon_key, bearer=token)
        helpers = ok_json(rest.post("/rpc/conf_auth_helpers", json_body={}))
        assert helpers["uid"] == U1 and helpers["role"] == "authenticated"
        assert helpers["jwt"]["sub"] == U1

    def test_jwt_without_role_claim_runs_as_anon_and_role_is_added(self, stack: Any, http: httpx.Client) -> None:
        token = mint_jwt(stack.jwt_secret, {"sub": U1})
        me = whoami(as_key(stack, http, stack.anon_key, bearer=token))
        assert me["user"] == "anon"
        assert me["claims"]["role"] == "anon" and me["claims"]["sub"] == U1

    def test_request_method_path_and_lowercased_headers(self, stack: Any, service: Rest) -> None:
        me = whoami(service, headers={"X-Conf-Test": "abc", "Prefer": "count=none"})
        assert me["method"] == "POST"
        assert me["path"] == "/rpc/conf_auth_whoami"  # /rest/v1 is stripped
        headers = me["headers"]
        assert headers["x-conf-test"] == "abc"
        assert headers["authorization"].startswith("Bearer ")
        assert "prefer" in headers
        assert all(name == name.lower() for name in headers)

    def test_cookies_go_to_request_cookies_not_request_headers(self, service: Rest) -> None:
        me = whoami(service, headers={"Cookie": "a=b; c=d"})
        assert me["cookies"] == {"a": "b", "c": "d"}
        assert "cookie" not in me["headers"]

    def test_role_settings_apply_per_request(self, stack: Any, http: httpx.Client) -> None:
        # ALTER ROLE ... SET statement_timeout (Supabase: anon 3s, authenticated 8s)
        anon = as_key(stack, http, stack.anon_key, bearer=stack.anon_key)
        user = as_key(stack, http, stack.anon_key, bearer=user_jwt(stack.jwt_secret, U1))
        assert whoami(anon)["timeout"] == "3s"
        assert whoami(user)["timeout"] == "8s"

    def test_anon_statement_timeout_is_500_57014(self, stack: Any, http: httpx.Client) -> None:
        anon = as_key(stack, http, stack.anon_key, bearer=stack.anon_key)
        resp = anon.post("/rpc/conf_auth_sleep", json_body={"seconds": 3.5})
        assert_error(resp, 500, "57014", message="canceling statement due to statement timeout")

    def test_timezone_preference(self, service: Rest) -> None:
        resp = service.post("/rpc/conf_auth_whoami", json_body={}, prefer="timezone=America/Los_Angeles")
        assert ok_json(resp)["tz"] == "America/Los_Angeles"
        assert "timezone=America/Los_Angeles" in [p.strip() for p in resp.headers["preference-applied"].split(",")]

    def test_non_bearer_scheme_is_anonymous(self, stack: Any, http: httpx.Client) -> None:
        rest = as_key(stack, http, stack.anon_key, headers={"Authorization": "Basic Zm9vOmJhcg=="})
        assert role_of(rest) == "anon"

    def test_get_sets_request_method_get(self, service: Rest) -> None:
        assert ok_json(service.get("/rpc/conf_auth_whoami"))["method"] == "GET"

    def test_settings_do_not_leak_between_requests(self, stack: Any, http: httpx.Client) -> None:
        user = as_key(stack, http, stack.anon_key, bearer=user_jwt(stack.jwt_secret, U1))
        anon = as_key(stack, http, stack.anon_key, bearer=stack.anon_key)
        for _ in range(3):
            assert whoami(user)["claims"]["sub"] == U1
            me = whoami(anon)
            assert me["user"] == "anon" and "sub" not in me["claims"]

    def test_settings_stay_per_request_under_concurrency(self, stack: Any) -> None:
        # set_config(..., true) is transaction-local; pooled connections must not carry claims
        # from one request into another, also when requests overlap.
        from concurrent.futures import ThreadPoolExecutor

        subs = [str(uuid.UUID(int=i + 1)) for i in range(8)]

        def worker(sub: str) -> list[tuple[str | None, str | None]]:
            seen: list[tuple[str | None, str | None]] = []
            with httpx.Client(timeout=20.0) as own:
                user = as_key(stack, own, stack.anon_key, bearer=user_jwt(stack.jwt_secret, sub))
                anon = as_key(stack, own, stack.anon_key, bearer=stack.anon_key)
                for _ in range(5):
                    me = whoami(user)
                    seen.append((sub, me["claims"].get("sub")))
                    me = whoami(anon)
                    seen.append((None, me["claims"].get("sub")))
            return seen

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = [pair for chunk in pool.map(worker, subs) for pair in chunk]
        assert all(expected == got for expected, got in results), results

    def test_unknown_role_is_401_22023(self, stack: Any, http: httpx.Client) -> None:
        token = mint_jwt(stack.jwt_secret, {"role": "conf_nobody"})
        resp = as_key(stack, http, stack.anon_key, bearer=token).get(f"/{NOTES}")
        assert_error(resp, 401, "22023", message='role "conf_nobody" does not exist')

    def test_role_the_authenticator_cannot_switch_to_is_403_42501(self, stack: Any, http: httpx.Client) -> None:
        token = mint_jwt(stack.jwt_secret, {"role": OUTSIDER})
        resp = as_key(stack, http, stack.anon_key, bearer=token).get(f"/{NOTES}")
        assert_error(resp, 403, "42501", message=f'permission denied to set role "{OUTSIDER}"')


# --- §10.3 privileges and RLS -----------------------------------------------------------------


class TestPrivileges:
    def test_anon_without_grant_is_401_with_www_authenticate(self, stack: Any, http: httpx.Client) -> None:
        resp = as_key(stack, http, stack.anon_key, bearer=stack.anon_key).get(f"/{SECRET_T}")
        assert_error(resp, 401, "42501", message=f"permission denied for table {SECRET_T}",
                     details=None, hint=None)
        assert resp.headers.get("www-authenticate") == "Bearer"

    def test_authenticated_without_grant_is_403(self, stack: Any, http: httpx.Client) -> None:
        resp = as_key(stack, http, stack.anon_key, bearer=user_jwt(stack.jwt_secret, U1)).get(f"/{SECRET_T}")
        assert_error(resp, 403, "42501", message=f"permission denied for table {SECRET_T}")
        assert "www-authenticate" not in resp.headers

    def test_status_depends_on_the_role_name_not_on_the_key(self, stack: Any, http: httpx.Client) -> None:
        token = mint_jwt(stack.jwt_secret, {"role": "anon", "sub": U1})
        resp = as_key(stack, http, stack.service_role_key, bearer=token).get(f"/{SECRET_T}")
        assert_error(resp, 401, "42501")

    def test_insert_without_select_privilege_works_minimal(self, stack: Any, http: httpx.Client) -> None:
        stack.execute_sql("truncate public.conf_auth_dropbox;")
        user = as_key(stack, http, stack.anon_key, bearer=user_jwt(stack.jwt_secret, U1))
        assert user.post("/conf_auth_dropbox", json_body={"id": 1, "body": "x"}).status_code == 201

    def test_representation_needs_select_privilege_and_rolls_back(self, stack: Any, http: httpx.Client) -> None:
        stack.execute_sql("truncate public.conf_auth_dropbox;")
        user = as_key(stack, http, stack.anon_key, bearer=user_jwt(stack.jwt_secret, U1))
        resp = user.post("/conf_auth_dropbox", json_body={"id": 2, "body": "x"}, prefer="return=representation")
        assert_error(resp, 403, "42501")
        anon = as_key(stack, http, stack.anon_key, bearer=stack.anon_key)
        resp = anon.post("/conf_auth_dropbox", json_body={"id": 3, "body": "x"}, prefer="return=representation")
        assert_error(resp, 401, "42501")
        assert sql_rows(stack.database_url, "select count(*) from public.conf_auth_dropbox") == [(0,)]

    def test_function_without_execute_privilege(self, stack: Any, http: httpx.Client) -> None:
        # AuthSpec.hs "denies execution on functions that anonymous does not own" / "allows ..."
        anon = as_key(stack, http, stack.anon_key, bearer=stack.anon_key)
        resp = anon.post("/rpc/conf_auth_private_fn", json_body={"name": "anonymous"})
        assert_error(resp, 401, "42501", message="permission denied for function conf_auth_private_fn")
        user = as_key(stack, http, stack.anon_key, bearer=user_jwt(stack.jwt_secret, U1))
        assert ok_json(user.post("/rpc/conf_auth_private_fn", json_body={"name": "jdoe"})) == "Privileged hello to jdoe"

    def test_jwt_with_no_claims_runs_as_anon(self, stack: Any, http: httpx.Client) -> None:
        # AuthSpec.hs "should fail when jwt contains no claims" (-> anonymous -> 401 on a private table)
        token = mint_jwt(stack.jwt_secret, {}, lifetime=None)
        resp = as_key(stack, http, stack.anon_key, bearer=token).get(f"/{SECRET_T}")
        assert_error(resp, 401, "42501")

    def test_service_role_has_the_grant(self, service: Rest) -> None:
        assert ids(service.get(f"/{SECRET_T}")) == [1]

    def test_new_tables_get_supabase_default_privileges(self, stack: Any, http: httpx.Client) -> None:
        # The bootstrap's default privileges (no explicit GRANT here).
        stack.execute_sql(
            "drop table if exists public.conf_auth_defaults;"
            "create table public.conf_auth_defaults (id int primary key);"
            "insert into public.conf_auth_defaults values (7);"
            "notify pgrst, 'reload schema';")
        anon = as_key(stack, http, stack.anon_key, bearer=stack.anon_key)
        wait_until_visible(anon, "/conf_auth_defaults")
        assert ids(anon.get("/conf_auth_defaults")) == [7]


class TestRowLevelSecurity:
    def test_anon_without_policy_sees_no_rows_and_no_error(self, stack: Any, http: httpx.Client,
                                                            notes: Rest) -> None:
        assert ids(as_key(stack, http, stack.anon_key, bearer=stack.anon_key).get(f"/{NOTES}")) == []

    def test_service_role_bypasses_rls(self, notes: Rest) -> None:
        assert ids(notes.get(f"/{NOTES}")) == [1, 2, 3]

    def test_users_see_their_own_rows(self, stack: Any, http: httpx.Client, notes: Rest) -> None:
        u1 = as_key(stack, http, stack.anon_key, bearer=user_jwt(stack.jwt_secret, U1))
        u2 = as_key(stack, http, stack.anon_key, bearer=user_jwt(stack.jwt_secret, U2))
        assert ids(u1.get(f"/{NOTES}")) == [1, 2]
        assert ids(u2.get(f"/{NOTES}")) == [3]

    def test_patch_and_delete_of_invisible_rows_affect_nothing(self, stack: Any, http: httpx.Client,
                                                               notes: Rest) -> None:
        # Reference §10.3 marks this (unconfirmed); it is plain PostgreSQL RLS: USING hides the
        # rows from UPDATE/DELETE, so PostgREST reports 0 affected rows, not an error.
        u2 = as_key(stack, http, stack.anon_key, bearer=user_jwt(stack.jwt_secret, U2))
        resp = u2.patch(f"/{NOTES}", "id=eq.1", json_body={"body": "hacked"}, prefer="return=representation")
        assert ok_json(resp) == []
        assert u2.delete(f"/{NOTES}", "id=eq.1").status_code == 204
        assert sql_rows(stack.database_url, f"select body from public.{NOTES} where id = 1") == [("u1 a",)]

    def test_with_check_violation_is_403_for_users(self, stack: Any, http: httpx.Client, notes: Rest) -> None:
        u1 = as_key(stack, http, stack.anon_key, bearer=user_jwt(stack.jwt_secret, U1))
        resp = u1.post(f"/{NOTES}", json_body={"id": 9, "owner": U2, "body": "x"})
        assert_error(resp, 403, "42501",
                     message=f'new row violates row-level security policy for table "{NOTES}"')

    def test_rls_violation_is_401_for_anon(self, stack: Any, http: httpx.Client, notes: Rest) -> None:
        anon = as_key(stack, http, stack.anon_key, bearer=stack.anon_key)
        assert_error(anon.post(f"/{NOTES}", json_body={"id": 9, "owner": U1, "body": "x"}), 401, "42501")

    def test_user_inserts_own_row(self, stack: Any, http: httpx.Client, notes: Rest) -> None:
        u1 = as_key(stack, http, stack.anon_key, bearer=user_jwt(stack.jwt_secret, U1))
        assert u1.post(f"/{NOTES}", json_body={"id": 9, "owner": U1, "body": "mine"}).status_code == 201


# --- supabase-keys.md §5 gateway rules --------------------------------------------------------


NO_KEY = {"message": "No API key found in request", "hint": "No `apikey` request header or url param was found."}
BAD_KEY = {"message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key."}


def assert_gateway_401(resp: httpx.Response, expected: dict[str, str]) -> None:
    assert resp.status_code == 401, resp.text
    body = resp.json()
    for k, v in expected.items():
        assert body.get(k) == v, body


class TestKeyRow1MissingKey:
    def test_no_headers_at_all(self, stack: Any, http: httpx.Client) -> None:
        assert_gateway_401(as_key(stack, http, None).get(f"/{NOTES}"), NO_KEY)

    def test_empty_apikey(self, stack: Any, http: httpx.Client) -> None:
        assert_gateway_401(as_key(stack, http, "", bearer=None).get(f"/{NOTES}"), NO_KEY)

    def test_bearer_alone_is_not_enough(self, stack: Any, http: httpx.Client) -> None:
        rest = as_key(stack, http, None, bearer=stack.service_role_key)
        assert_gateway_401(rest.get(f"/{NOTES}"), NO_KEY)


class TestKeyRow2UnknownKey:
    @pytest.mark.parametrize("kind", ["opaque", "foreign_jwt", "user_jwt"])
    def test_unconfigured_key(self, stack: Any, http: httpx.Client, kind: str) -> None:
        key = {
            "opaque": "sb_secret_" + "A" * 22 + "_abcdefgh",
            "foreign_jwt": mint_jwt("y" * 40, {"role": "service_role"}),
            # correctly signed, but not one of the project's keys
            "user_jwt": user_jwt(stack.jwt_secret, U1),
        }[kind]
        assert_gateway_401(as_key(stack, http, key).get(f"/{NOTES}"), BAD_KEY)


class TestKeyRow4SecretKeyInBrowser:
    def test_secret_key_with_a_browser_user_agent_is_refused(self, stack: Any, http: httpx.Client) -> None:
        rest = as_key(stack, http, stack.secret_key, headers={"User-Agent": BROWSER_UA})
        resp = rest.get(f"/{NOTES}")
        assert resp.status_code == 401, resp.text
        assert resp.headers.get("sb-error-code") == "UNAUTHORIZED_INVALID_API_KEY_TYPE"
        assert resp.json()["message"] == "Forbidden use of secret API key in browser"

    def test_non_browser_user_agent_may_use_the_secret_key(self, stack: Any, http: httpx.Client) -> None:
        # supabase-keys.md §3: the "starts with Mozilla/" rule is an inference (unconfirmed);
        # curl passed on hosted, so the stand-in must not refuse it.
        rest = as_key(stack, http, stack.secret_key, headers={"User-Agent": "curl/8.5.0"})
        assert role_of(rest) == "service_role"

    def test_publishable_and_legacy_service_keys_are_not_checked(self, stack: Any, http: httpx.Client) -> None:
        ua = {"User-Agent": BROWSER_UA}
        assert role_of(as_key(stack, http, stack.publishable_key, headers=ua)) == "anon"
        assert role_of(as_key(stack, http, stack.service_role_key, bearer=stack.service_role_key,
                              headers=ua)) == "service_role"


class TestKeyRow5OpaqueKeys:
    @pytest.mark.parametrize("same_bearer", [False, True])
    def test_publishable_is_anon(self, stack: Any, http: httpx.Client, same_bearer: bool) -> None:
        key = stack.publishable_key
        assert role_of(as_key(stack, http, key, bearer=key if same_bearer else None)) == "anon"

    @pytest.mark.parametrize("same_bearer", [False, True])
    def test_secret_is_service_role(self, stack: Any, http: httpx.Client, same_bearer: bool) -> None:
        key = stack.secret_key
        assert role_of(as_key(stack, http, key, bearer=key if same_bearer else None)) == "service_role"

    def test_minted_jwt_claims(self, stack: Any, http: httpx.Client) -> None:
        claims = whoami(as_key(stack, http, stack.secret_key))["claims"]
        assert claims["role"] == "service_role"
        assert claims.get("iss") == "supabase"

    def test_opaque_key_never_reaches_postgrest_as_a_credential(self, stack: Any, http: httpx.Client) -> None:
        headers = whoami(as_key(stack, http, stack.secret_key))["headers"]
        authorization = headers.get("authorization", "")
        assert authorization.startswith("Bearer ") and not authorization.startswith("Bearer sb_")


class TestKeyRow6DifferentOpaqueBearer:
    def test_different_sb_bearer_is_passed_through_and_rejected(self, stack: Any, http: httpx.Client) -> None:
        # supabase-keys.md marks the exact hosted body (unconfirmed); what PostgREST itself answers
        # is confirmed by src/library/PostgREST/Error.hs (UnexpectedParts n -> "Expected 3 parts
        # in JWT; got n", PGRST301) for a one-part token.
        rest = as_key(stack, http, stack.publishable_key, bearer=stack.secret_key)
        assert_error(rest.get(f"/{NOTES}"), 401, "PGRST301", message="Expected 3 parts in JWT; got 1")


class TestKeyRow7JwtBearerWins:
    def test_publishable_key_with_legacy_service_jwt(self, stack: Any, http: httpx.Client) -> None:
        assert role_of(as_key(stack, http, stack.publishable_key, bearer=stack.service_role_key)) == "service_role"

    def test_secret_key_with_user_jwt_drops_to_authenticated(self, stack: Any, http: httpx.Client) -> None:
        token = user_jwt(stack.jwt_secret, U1)
        assert role_of(as_key(stack, http, stack.secret_key, bearer=token)) == "authenticated"

    def test_anon_key_with_user_jwt(self, stack: Any, http: httpx.Client) -> None:
        token = user_jwt(stack.jwt_secret, U2)
        assert whoami(as_key(stack, http, stack.anon_key, bearer=token))["claims"]["sub"] == U2


class TestKeyRow8LegacyKeyAlone:
    # Row 8 follows self-hosted Kong/Envoy (which set Authorization from the apikey); hosted is
    # (unconfirmed) per supabase-keys.md, but a 2023 hosted report got `anon` from apikey alone
    # with the anon key, which agrees with the first case.
    def test_anon_key_without_authorization(self, stack: Any, http: httpx.Client) -> None:
        assert role_of(as_key(stack, http, stack.anon_key, bearer=None)) == "anon"

    def test_service_key_without_authorization(self, stack: Any, http: httpx.Client) -> None:
        assert role_of(as_key(stack, http, stack.service_role_key, bearer=None)) == "service_role"

    def test_legacy_key_payloads(self, stack: Any) -> None:
        # Reference §10.4 marks the key payloads (unconfirmed); supabase-keys.md §1 cites hosted
        # payloads {"iss":"supabase","ref":…,"role":…}. Checks the stand-in mints that shape.
        for key, role in ((stack.anon_key, "anon"), (stack.service_role_key, "service_role")):
            claims = jwt.decode(key, stack.jwt_secret, algorithms=["HS256"], options={"verify_aud": False})
            assert claims["role"] == role and claims["iss"] == "supabase"


class TestKeyLookup:
    def test_header_name_is_case_insensitive(self, stack: Any, http: httpx.Client) -> None:
        # supabase-py sends `apiKey`.
        rest = Rest(stack.url, None, bearer=stack.service_role_key, client=http,
                    headers={"apiKey": stack.service_role_key})
        assert role_of(rest) == "service_role"

    def test_apikey_query_parameter(self, stack: Any, http: httpx.Client) -> None:
        # Supabase's kong.yml (rest-v1 route) uses key-auth with hide_credentials: true, so the
        # `apikey` query parameter is consumed by the gateway and is not seen as a filter.
        rest = as_key(stack, http, None)
        resp = rest.get("/conf_auth_notes", [("apikey", stack.service_role_key), ("select", "id")])
        assert resp.status_code == 200, resp.text


@pytest.fixture(scope="module")
def legacy_off() -> Iterator[Any]:
    from parlant_supabase_sync.local import LocalSupabase

    with LocalSupabase(legacy_keys_enabled=False) as other:
        other.execute_sql(
            "create table public.conf_auth_legacy (id int primary key);"
            "insert into public.conf_auth_legacy values (1);"
            "grant all on table public.conf_auth_legacy to anon, authenticated, service_role;"
            "notify pgrst, 'reload schema';")
        yield other


class TestKeyRow3LegacyKeysDisabled:
    def test_legacy_key_in_apikey_is_refused(self, legacy_off: Any, http: httpx.Client) -> None:
        for key in (legacy_off.anon_key, legacy_off.service_role_key):
            resp = as_key(legacy_off, http, key).get("/conf_auth_legacy")
            assert resp.status_code == 401, resp.text
            assert resp.json()["message"] == "Legacy API keys are disabled"

    def test_opaque_keys_still_work(self, legacy_off: Any, http: httpx.Client) -> None:
        rest = as_key(legacy_off, http, legacy_off.secret_key)
        wait_until_visible(rest, "/conf_auth_legacy")
        assert ids(rest.get("/conf_auth_legacy")) == [1]

    def test_legacy_jwt_as_bearer_still_verifies(self, legacy_off: Any, http: httpx.Client) -> None:
        # supabase-keys.md §1: "(unconfirmed officially)"; the stand-in follows the reference
        # (the gateway checks only `apikey`; PostgREST still knows the JWT secret).
        rest = as_key(legacy_off, http, legacy_off.publishable_key, bearer=legacy_off.service_role_key)
        wait_until_visible(rest, "/conf_auth_legacy")
        assert ids(rest.get("/conf_auth_legacy")) == [1]

