"""`check` on locked-down and weakened databases: it fails (ok False, exit 1 from the CLI, one
line naming the table and the command to run) on anything that lets a browser role in beyond
the chosen anon policy, on RLS switched off and on functions of an earlier release."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from security_helpers import install

from parlant_supabase_sync.api import CheckReport, connect
from parlant_supabase_sync.cli import main

if TYPE_CHECKING:
    from parlant_supabase_sync.local.stack import LocalSupabase


@pytest.fixture
def stack(security_stack: LocalSupabase) -> Iterator[LocalSupabase]:
    yield security_stack
    install(security_stack, "none")


def run_check(stack: LocalSupabase) -> CheckReport:
    with connect(url=stack.url, key=stack.secret_key) as db:
        return db.check()


@pytest.mark.parametrize("mode", ["none", "per-customer", "upgrade"])
def test_check_passes_on_each_locked_down_mode(stack: LocalSupabase, mode: str) -> None:
    install(stack, mode)
    report = run_check(stack)
    assert report.ok, report.next_step
    assert report.exposed == {} and report.legacy_functions == []


WEAKENINGS = {
    "rls off": (
        "none",
        "ALTER TABLE public.parlant_sessions_events DISABLE ROW LEVEL SECURITY",
        ["row-level security is off on parlant_sessions_events"],
        "parlant-supabase-sync sql > schema.sql",
    ),
    "extra anon grant": (
        "none",
        "GRANT SELECT ON public.parlant_customers_ TO anon",
        ["anon holds SELECT on parlant_customers_"],
        "parlant-supabase-sync sql > schema.sql",
    ),
    "grant to PUBLIC": (
        "none",
        "GRANT DELETE ON public.parlant_context_variables_values TO PUBLIC",
        ["public holds DELETE on parlant_context_variables_values"],
        "parlant-supabase-sync sql > schema.sql",
    ),
    "column grant": (
        "none",
        "GRANT UPDATE (data) ON public.parlant_sessions_ TO authenticated",
        ["authenticated holds UPDATE on parlant_sessions_"],
        "parlant-supabase-sync sql > schema.sql",
    ),
    "receipts truncate": (
        "none",
        "GRANT TRUNCATE ON public.parlant_write_receipts TO authenticated",
        ["authenticated holds TRUNCATE on parlant_write_receipts"],
        "parlant-supabase-sync sql > schema.sql",
    ),
    "allow-all policy left": (
        "none",
        (
            'CREATE POLICY "Allow all operations on parlant_sessions_" ON public.parlant_sessions_ '
            "FOR ALL USING (true) WITH CHECK (true)"
        ),
        ["policy 'Allow all operations on parlant_sessions_' on parlant_sessions_ lets public ALL"],
        "parlant-supabase-sync sql --upgrade > upgrade.sql",
    ),
    "a policy of someone else": (
        "none",
        'CREATE POLICY "read all" ON public.parlant_sessions_events FOR SELECT TO anon USING (true)',
        ["policy 'read all' on parlant_sessions_events lets anon SELECT"],
        'DROP POLICY "read all" ON "public"."parlant_sessions_events";',
    ),
    "old function present": (
        "none",
        (
            "CREATE FUNCTION public.parlant_merge_document(a text, b text, c jsonb, d boolean) "
            "RETURNS void LANGUAGE sql AS 'SELECT'"
        ),
        [],
        "parlant-supabase-sync sql --upgrade > upgrade.sql",
    ),
    "function executable by anon": (
        "none",
        "GRANT EXECUTE ON FUNCTION public.parlant_write(text, text, text, jsonb) TO anon",
        ["anon may execute parlant_write"],
        "parlant-supabase-sync sql > schema.sql",
    ),
    "function executable by PUBLIC": (
        "none",
        "GRANT EXECUTE ON FUNCTION public.parlant_schema_report(text[]) TO PUBLIC",
        ["anon, authenticated, public may execute parlant_schema_report"],
        "parlant-supabase-sync sql > schema.sql",
    ),
    "per-customer plus an insert grant": (
        "per-customer",
        "GRANT INSERT ON public.parlant_sessions_ TO authenticated",
        ["authenticated holds INSERT on parlant_sessions_"],
        "parlant-supabase-sync sql --anon-policy per-customer > schema.sql",
    ),
    "per-customer select on a table without the policy": (
        "per-customer",
        "GRANT SELECT ON public.parlant_sessions_events TO authenticated",
        ["authenticated holds SELECT on parlant_sessions_events"],
        "parlant-supabase-sync sql --anon-policy per-customer > schema.sql",
    ),
    "allow-all mode": (
        "allow-all",
        "SELECT 1",
        ["anon holds SELECT, INSERT, UPDATE, DELETE on parlant_sessions_"],
        "parlant-supabase-sync sql --upgrade > upgrade.sql",
    ),
    "upgrade keeping the seed policies": (
        "upgrade-keep",
        "SELECT 1",
        ["policy 'Allow all operations on parlant_sessions_' on parlant_sessions_ lets public ALL"],
        "parlant-supabase-sync sql --upgrade > upgrade.sql",
    ),
}


@pytest.mark.parametrize("weakening", list(WEAKENINGS))
def test_check_fails_on_a_weakened_database_and_says_what_to_run(
    stack: LocalSupabase, weakening: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mode, sql, problems, command = WEAKENINGS[weakening]
    install(stack, mode)
    stack.execute_sql(sql)
    report = run_check(stack)
    assert not report.ok
    found = [line for lines in report.exposed.values() for line in lines]
    for problem in problems:
        assert problem in found, found
    assert command in report.next_step, report.next_step
    for problem in problems[:1]:
        table = problem.split(" on ")[-1].split(" ")[0] if " on " in problem else problem.split()[-1]
        assert table in report.next_step
    # The CLI: exit 1, the one next step on stderr.
    code = main(["check", "--url", stack.url, "--key", stack.secret_key])
    out, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and command in lines[0], err
    assert stack.secret_key not in out + err


def test_check_names_the_old_function(stack: LocalSupabase) -> None:
    install(stack, "none")
    stack.execute_sql(WEAKENINGS["old function present"][1])
    report = run_check(stack)
    assert report.legacy_functions == ["parlant_merge_document"]
    assert "parlant_merge_document" in report.next_step and "--upgrade" in report.next_step


def test_check_says_an_old_report_function_means_old_functions(stack: LocalSupabase) -> None:
    """A report function from before the privilege report cannot tell what is exposed."""
    install(stack, "none")
    stack.execute_sql(
        "CREATE OR REPLACE FUNCTION public.parlant_schema_report(p_tables text[]) RETURNS jsonb "
        "LANGUAGE sql STABLE SET search_path = '' AS $f$ SELECT jsonb_build_object("
        "'schema', 'public', 'receipts', true, 'tables', (SELECT jsonb_object_agg(u.name, "
        "jsonb_build_object('exists', true, 'adapter', true, 'rls', true, 'access', true)) "
        "FROM unnest(p_tables) AS u(name)), 'functions', jsonb_build_object()) $f$"
    )
    report = run_check(stack)
    assert not report.ok
    assert "parlant_schema_report" in report.legacy_functions
    assert "sql --upgrade" in report.next_step
