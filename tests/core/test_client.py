"""transport.py: the shared HTTP client, key headers, and who closes what."""

from __future__ import annotations

import inspect

import httpx
from core_helpers import Doc, MakeDb, identity
from postgrest import SyncPostgrestClient

from parlant_supabase_sync.core import SyncDocumentDatabase
from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.transport import Transport, auth_headers, build_http_client


def _settings(stand_in: LocalSupabase, key: str, **extra: object) -> SupabaseSettings:
    return SupabaseSettings(url=stand_in.url, key=key, **extra)


def test_sb_keys_go_in_apikey_only_and_jwts_also_as_bearer(stand_in: LocalSupabase) -> None:
    assert auth_headers(_settings(stand_in, stand_in.secret_key)) == {"apikey": stand_in.secret_key}
    assert auth_headers(_settings(stand_in, stand_in.service_role_key)) == {
        "apikey": stand_in.service_role_key,
        "Authorization": f"Bearer {stand_in.service_role_key}",
    }


def test_http_client_is_http11_with_explicit_limits_and_no_environment(
    stand_in: LocalSupabase,
) -> None:
    settings = _settings(stand_in, stand_in.secret_key, max_workers=12, timeouts={"read": 7.5})
    client = build_http_client(settings)
    try:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert pool._http2 is False and pool._http1 is True
        assert pool._max_connections == 12 and pool._max_keepalive_connections == 12
        assert client.timeout == settings.timeouts.as_httpx()
        assert client.timeout.read == 7.5
        assert client.trust_env is False
        assert "Mozilla" not in client.headers["User-Agent"]
    finally:
        client.close()


def test_postgrest_client_has_builtin_retries_off(stand_in: LocalSupabase) -> None:
    settings = _settings(stand_in, stand_in.secret_key)
    with httpx.Client() as shared:
        pg = Transport(settings, shared)._pg
        if "retry_enabled" in inspect.signature(SyncPostgrestClient.__init__).parameters:
            assert pg.retry_enabled is False
        assert pg.session is shared


def test_an_injected_http_client_stays_open_and_an_own_one_is_closed(
    stand_in: LocalSupabase, make_db: MakeDb
) -> None:
    prefix = make_db().table_prefix
    settings = _settings(stand_in, stand_in.secret_key)
    with httpx.Client(trust_env=False) as shared:
        with SyncDocumentDatabase(settings, table_prefix=prefix, http_client=shared) as db:
            db.get_or_create_collection("docs", Doc, identity).find({})
        assert not shared.is_closed
        assert shared.get(f"{stand_in.url}/rest/v1/").status_code in (200, 401)
    own = SyncDocumentDatabase(settings, table_prefix=prefix)
    own.close()
    assert own.transport.http.is_closed


def test_the_key_never_shows_in_reprs_or_stats(stand_in: LocalSupabase, make_db: MakeDb) -> None:
    db = make_db(key=stand_in.service_role_key)
    collection = db.get_or_create_collection("docs", Doc, identity)
    text = repr(db) + repr(collection) + repr(db.settings) + repr(db.stats.snapshot())
    assert stand_in.service_role_key not in text
