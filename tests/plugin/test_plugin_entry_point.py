"""A user's own test suite run by pytest in a subprocess: the plugin arrives through the
pytest11 entry point alone (no import, no conftest registration)."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

USER_CONFTEST = '''
from parlant_supabase_sync.local.pytest_plugin import factories

docs_proc = factories.supabase_proc(
    max_rows=2, test_schemas=1, locale="icu:en-US", schemas=("public", "shop")
)
docs_db = factories.supabase_db(
    "docs_proc",
    stores={"shop_": ("orders", "metadata")},
    load=["INSERT INTO shop_orders (id, creation_utc, version, data) VALUES "
          "('o0', '2026', '0.1', '{\\"id\\": \\"o0\\", \\"creation_utc\\": \\"2026\\", "
          "\\"version\\": \\"0.1\\"}')"],
)
'''

USER_TESTS = '''
from parlant_supabase_sync import connect

ORDER = {"id": "o1", "version": "0.1", "creation_utc": "2027"}


def test_default_fixture(supabase_db):
    with supabase_db.connect() as db:
        db.store("sessions").collection("sessions").insert(ORDER)
        assert db.store("sessions").collection("sessions").count() == 1


def test_factory_fixture(docs_db, monkeypatch):
    for name, value in docs_db.env().items():
        monkeypatch.setenv(name, value)
    with connect() as db:
        orders = db.store("shop_").collection("orders")
        orders.insert(ORDER)
        orders.insert_many([{**ORDER, "id": f"o{i}"} for i in range(2, 6)])
        assert [o["id"] for o in orders] == ["o0", "o1", "o2", "o3", "o4", "o5"]


def test_factory_fixture_again_starts_empty(docs_db):
    with docs_db.connect() as db:
        assert [o["id"] for o in db.store("shop_").collection("orders")] == ["o0"]


def test_factory_options_reach_the_stand_in(docs_db):
    assert docs_db.query("SELECT 'a' < 'B'") == [(True,)]  # icu:en-US, not C.UTF-8
    assert docs_db.schema == "pss_test_0"  # the one spare schema, after public and shop
    assert docs_db.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'shop'") == [(1,)]


def test_local_supabase_is_still_there(local_supabase):
    assert local_supabase.url.startswith("http://127.0.0.1:")
'''


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("parlant_supabase_sync") == "parlant_supabase_sync.local.pytest_plugin"


@pytest.mark.slow
def test_a_users_suite_gets_the_fixtures_from_the_entry_point(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_user=USER_TESTS)
    for name in ("SUPABASE_URL", "SUPABASE_KEY", "SUPABASE_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=240)
    result.assert_outcomes(passed=5)
