"""readiness.py: `check` as a rule table; the advice fits where the database is."""

from __future__ import annotations

from collections.abc import Callable

from cli_helpers import StoreTables

from parlant_supabase_sync import connect, readiness
from parlant_supabase_sync.local.stack import LocalSupabase
from parlant_supabase_sync.settings import SupabaseSettings, decode_key_role

PSQL = 'psql "$DATABASE_URL" -f schema.sql'


def test_the_rules_are_a_table_with_unique_names() -> None:
    names = [rule.name for rule in readiness.RULES]
    assert len(names) == len(set(names))
    assert {rule.severity for rule in readiness.RULES} == {"note", "error"}
    errors = [rule.name for rule in readiness.RULES if rule.severity == "error"]
    assert errors[0] == "browser-role-key" and errors[-1] == "not-a-server-key"


def test_a_secret_key_on_a_ready_store_passes_without_any_note(
    local_supabase: LocalSupabase, make_store: Callable[[], StoreTables]
) -> None:
    store = make_store()
    with connect(url=local_supabase.url, key=local_supabase.secret_key) as db:
        report = db.check([store.prefix])
    assert report.ok and report.next_step == readiness.READY
    assert report.notes == [] and report.key_kind == "secret"


def test_the_local_stack_is_told_to_use_psql_for_every_missing_table_at_once(
    local_supabase: LocalSupabase, adapter_functions: None
) -> None:
    with connect(url=local_supabase.url, key=local_supabase.secret_key) as db:
        report = db.check(["nolocal_sessions_", "nolocal_customers_"])
    assert not report.ok
    assert "nolocal_sessions_events" in report.missing_tables
    assert "nolocal_customers_customer_tag_associations" in report.missing_tables
    assert (
        "parlant-supabase-sync sql --prefix nolocal_sessions_ --prefix nolocal_customers_ "
        "> schema.sql" in report.next_step
    )
    assert PSQL in report.next_step and "SQL editor" not in report.next_step


def _facts(
    url: str, key: str, report: readiness.SchemaReport, schema: str = "public"
) -> readiness.Facts:
    settings = SupabaseSettings(url=url, key=key, db_schema=schema)
    return readiness.Facts.gather(decode_key_role(key), settings, report)


def test_a_hosted_project_is_told_to_use_the_sql_editor(local_supabase: LocalSupabase) -> None:
    missing = readiness.SchemaReport(
        {"parlant_sessions_": readiness.TableStatus(exists=False)}, {"parlant_write": True}
    )
    hosted = _facts("https://abcdefghijklmnop.supabase.co", local_supabase.secret_key, missing)
    notes, rule = readiness.evaluate(hosted)
    assert notes == [] and rule is not None and rule.name == "no-tables"
    assert "execute schema.sql in the Supabase SQL editor" in rule.advice(hosted)
    local = _facts("http://localhost:54321", local_supabase.secret_key, missing)
    assert readiness.is_local(local.url) and PSQL in readiness.evaluate(local)[1].advice(local)  # type: ignore[union-attr]


def test_a_legacy_jwt_key_gets_the_deprecation_note_only(local_supabase: LocalSupabase) -> None:
    ready = readiness.SchemaReport(
        {"parlant_sessions_": readiness.TableStatus(exists=True, adapter=True, rls=True)},
        {"parlant_write": True},
        function_grants={},
    )
    notes, rule = readiness.evaluate(
        _facts(local_supabase.url, local_supabase.service_role_key, ready)
    )
    assert rule is None and len(notes) == 1 and notes[0].startswith("legacy JWT key")


def test_a_non_public_schema_is_in_every_advised_command(local_supabase: LocalSupabase) -> None:
    old = readiness.SchemaReport(
        {"parlant_sessions_": readiness.TableStatus(exists=True, adapter=False)},
        {"parlant_write": False},
    )
    facts = _facts(local_supabase.url, local_supabase.secret_key, old, schema="parlant")
    rule = readiness.evaluate(facts)[1]
    assert rule is not None and rule.name == "made-by-older-sql"
    assert "`parlant-supabase-sync sql --schema parlant --upgrade > upgrade.sql`" in rule.advice(facts)
    functions = next(r for r in readiness.RULES if r.name == "missing-functions")
    assert "sql --schema parlant --functions-only > functions.sql" in functions.advice(facts)
