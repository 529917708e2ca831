"""A public key (publishable, legacy anon, any JWT whose role is not service_role) is refused by
the library before any request, in one line that says which key to use, unless the caller opts
in (`allow_public_key`, PARLANT_SUPABASE_ALLOW_PUBLIC_KEY=1). The CLI inherits the refusal: one
line on stderr, exit 1, nothing on stdout (it used to print 0 and exit 0)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from security_helpers import CUSTOMER_A, install

from parlant_supabase_sync.api import connect
from parlant_supabase_sync.cli import main
from parlant_supabase_sync.core import SyncDocumentDatabase
from parlant_supabase_sync.errors import ConfigurationError
from parlant_supabase_sync.settings import SupabaseSettings

if TYPE_CHECKING:
    from parlant_supabase_sync.local.stack import LocalSupabase


@pytest.fixture(scope="module")
def stack(security_stack: LocalSupabase) -> Iterator[LocalSupabase]:
    install(security_stack, "allow-all")
    yield security_stack
    install(security_stack, "none")


def public_keys(stack: LocalSupabase) -> dict[str, str]:
    from parlant_supabase_sync.local.keys import mint_role_jwt

    return {
        "publishable": stack.publishable_key,
        "legacy anon": stack.anon_key,
        "user JWT": mint_role_jwt(stack.jwt_secret, "authenticated", 3600, sub=CUSTOMER_A),
        "other role JWT": mint_role_jwt(stack.jwt_secret, "supabase_admin", 3600),
    }


KINDS = ("publishable", "legacy anon", "user JWT", "other role JWT")


def assert_refusal(text: str) -> None:
    assert "\n" not in text.strip()
    assert "sb_secret_" in text and "service_role" in text
    assert "PARLANT_SUPABASE_ALLOW_PUBLIC_KEY=1" in text


@pytest.mark.parametrize("kind", KINDS)
def test_the_library_refuses_a_public_key_before_any_request(
    stack: LocalSupabase, kind: str
) -> None:
    key = public_keys(stack)[kind]
    settings = SupabaseSettings(url=stack.url, key=key)
    before = stack.requests.count()
    with pytest.raises(ConfigurationError) as refused:
        SyncDocumentDatabase(settings, table_prefix="parlant_sessions_")
    assert_refusal(str(refused.value))
    assert key not in str(refused.value)
    with pytest.raises(ConfigurationError):
        connect(url=stack.url, key=key)
    assert stack.requests.count() == before


def test_the_server_keys_are_accepted(stack: LocalSupabase) -> None:
    for key in (stack.secret_key, stack.service_role_key):
        with connect(url=stack.url, key=key) as db:
            assert db.store("sessions").collection("sessions").count() == 3


@pytest.mark.parametrize(
    "verb",
    [
        ["count", "sessions", "sessions"],
        ["find", "sessions", "sessions"],
        ["get", "sessions", "sessions", "a1"],
        ["export", "sessions", "sessions"],
        ["ls"],
        ["check"],
    ],
)
def test_the_cli_refuses_a_publishable_key_in_one_line_with_exit_1(
    stack: LocalSupabase, verb: list[str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PARLANT_SUPABASE_ALLOW_PUBLIC_KEY", raising=False)
    before = stack.requests.count()
    code = main([*verb, "--url", stack.url, "--key", stack.publishable_key])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert_refusal(err)
    assert stack.publishable_key not in err
    assert stack.requests.count() == before


def test_a_caller_may_opt_in_to_a_public_key(stack: LocalSupabase) -> None:
    if "allow_public_key" not in SupabaseSettings.model_fields:
        pytest.skip("SupabaseSettings.allow_public_key is not there yet")
    # With the allow-all policies (installed here), the anon role reads every row.
    settings = SupabaseSettings(url=stack.url, key=stack.publishable_key, allow_public_key=True)
    with SyncDocumentDatabase(settings, table_prefix="parlant_sessions_") as db:
        assert db.transport.settings.allow_public_key is True
    env = {
        "SUPABASE_URL": stack.url,
        "SUPABASE_KEY": stack.anon_key,
        "PARLANT_SUPABASE_ALLOW_PUBLIC_KEY": "1",
    }
    from_env = SupabaseSettings.from_env(env)
    assert from_env.allow_public_key is True
    with connect(url=stack.url, key=stack.publishable_key, allow_public_key=True) as db:
        assert db.store("sessions").collection("sessions").count() == 3
