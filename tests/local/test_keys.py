"""Local API keys: Supabase's shapes and claims, verification, persistence, no leaks."""

from __future__ import annotations

import os
import re
import stat
import time

import jwt
import pytest

from parlant_supabase_sync.local.keys import (
    LEGACY_KEY_LIFETIME,
    KeySet,
    generate_jwt_secret,
    generate_opaque_key,
    mint_legacy_key,
    mint_role_jwt,
    opaque_key_checksum_ok,
)

OPAQUE = re.compile(r"^sb_(publishable|secret)_[A-Za-z0-9_-]{22}_[0-9a-f]{8}$")


def test_jwt_secret_is_long_enough_for_postgrest_and_random() -> None:
    secrets = {generate_jwt_secret() for _ in range(20)}
    assert len(secrets) == 20
    assert all(len(s) >= 32 for s in secrets)


@pytest.mark.parametrize("role", ["anon", "service_role"])
def test_legacy_key_has_hosted_claims_and_verifies_with_the_secret(role: str) -> None:
    secret = generate_jwt_secret()
    before = int(time.time())
    key = mint_legacy_key(secret, role, "abcdefghijklmnopqrst")  # type: ignore[arg-type]
    assert jwt.get_unverified_header(key)["alg"] == "HS256"
    claims = jwt.decode(key, secret, algorithms=["HS256"])
    assert set(claims) == {"iss", "ref", "role", "iat", "exp"}
    assert claims["iss"] == "supabase"
    assert claims["ref"] == "abcdefghijklmnopqrst"
    assert claims["role"] == role
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == LEGACY_KEY_LIFETIME
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(key, generate_jwt_secret(), algorithms=["HS256"])


@pytest.mark.parametrize("kind", ["publishable", "secret"])
def test_opaque_keys_have_supabase_shape_and_a_valid_checksum(kind: str) -> None:
    keys = {generate_opaque_key(kind) for _ in range(50)}  # type: ignore[arg-type]
    assert len(keys) == 50
    for key in keys:
        assert OPAQUE.match(key), key
        assert key.startswith(f"sb_{kind}_")
        assert opaque_key_checksum_ok(key)


def test_checksum_detects_a_changed_character_and_foreign_shapes() -> None:
    key = generate_opaque_key("secret")
    flipped = key[:12] + ("A" if key[12] != "A" else "B") + key[13:]
    assert not opaque_key_checksum_ok(flipped)
    assert not opaque_key_checksum_ok(key + "0")
    assert not opaque_key_checksum_ok("sbp_" + "0" * 40)
    assert not opaque_key_checksum_ok(mint_legacy_key(generate_jwt_secret(), "anon", "ref"))


def test_role_jwt_is_short_lived_and_carries_the_role() -> None:
    secret = generate_jwt_secret()
    token = mint_role_jwt(secret, "service_role", lifetime=60)
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["role"] == "service_role"
    assert claims["iss"] == "supabase"
    assert 0 < claims["exp"] - claims["iat"] <= 60


def test_role_jwt_extra_claims_cannot_override_the_role() -> None:
    secret = generate_jwt_secret()
    token = mint_role_jwt(secret, "anon", sub="user-1", role_hint="x")
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["role"] == "anon"
    assert claims["sub"] == "user-1"


def test_keyset_repr_and_str_show_no_key_material() -> None:
    keys = KeySet.generate()
    text = repr(keys) + str(keys) + f"{keys}"
    for value in (keys.jwt_secret, keys.anon, keys.service_role, keys.publishable, keys.secret):
        assert value not in text
        assert value[10:30] not in text


def test_keyset_roles_match_their_kinds() -> None:
    keys = KeySet.generate()
    assert keys.publishable.startswith("sb_publishable_")
    assert keys.secret.startswith("sb_secret_")
    assert jwt.decode(keys.anon, keys.jwt_secret, algorithms=["HS256"])["role"] == "anon"
    service = jwt.decode(keys.service_role, keys.jwt_secret, algorithms=["HS256"])
    assert service["role"] == "service_role"
    assert service["ref"] == keys.ref
    assert re.fullmatch(r"[a-z]{20}", keys.ref)


def test_keyset_persists_with_owner_only_permissions(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "keys.json")
    created = KeySet.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert KeySet.load_or_create(path) == created
    assert KeySet.load(path) == created


def test_malformed_keys_file_says_how_to_recover(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "keys.json")
    with open(path, "w") as fh:
        fh.write('{"jwt_secret": 3}')
    with pytest.raises(ValueError, match="delete it"):
        KeySet.load(path)
    with open(path, "w") as fh:
        fh.write("not json")
    with pytest.raises(ValueError, match="delete it"):
        KeySet.load(path)


def test_keyset_converts_to_gateway_api_keys() -> None:
    gateway = pytest.importorskip("parlant_supabase_sync.local.gateway")
    keys = KeySet.generate()
    api = keys.api_keys()
    assert isinstance(api, gateway.ApiKeys)
    assert (api.anon, api.service_role, api.publishable, api.secret) == (
        keys.anon, keys.service_role, keys.publishable, keys.secret,
    )
