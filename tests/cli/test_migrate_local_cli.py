"""`parlant-supabase-sync migrate-local PARLANT_HOME` on files written by Parlant's real stores."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from cli_helpers import RunCli, run_script

if TYPE_CHECKING:
    from parlant_supabase_sync.local.pytest_plugin import SupabaseTestDatabase

pytest.importorskip("parlant.core.sessions")
# Parlant's stores over JSON files live with the migrate tests (tests are not packages).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "facade"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "migrate"))

from migrate_helpers import json_stores, populate


@pytest.fixture
def parlant_home(tmp_path: Path) -> Path:
    home = tmp_path / "parlant-home"
    home.mkdir()

    async def write() -> None:
        async with json_stores(home) as stores:
            await populate(stores, events=12)

    anyio.run(write, backend="asyncio")  # Parlant's stores take asyncio locks
    return home


@pytest.fixture
def db_env(supabase_db: SupabaseTestDatabase) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "PARLANT_SUPABASE_"))}
    return {**base, **supabase_db.env()}


def rows_in(db: SupabaseTestDatabase, table: str) -> int:
    return int(db.query(f'SELECT count(*) FROM "{db.schema}"."{table}"')[0][0])


def test_dry_run_then_migrate_then_rerun_with_a_per_table_report(
    parlant_home: Path, supabase_db: SupabaseTestDatabase, db_env: dict[str, str]
) -> None:
    home = str(parlant_home)
    dry = run_script(["migrate-local", home, "--dry-run"], db_env)
    assert dry.code == 0, dry.err
    report = dry.json()
    assert report["dry_run"] is True and report["ok"] is True
    events = next(t for t in report["tables"] if t["table"] == "parlant_sessions_events")
    assert events["read"] == events["written"] == 13  # 12 + 1 in the other session
    assert rows_in(supabase_db, "parlant_sessions_events") == 0
    assert dry.err.splitlines()[0].split() == ["table", "read", "would", "write", "skipped",
                                               "conflicts"]  # fmt: skip

    done = run_script(["migrate-local", home], db_env)
    assert done.code == 0, done.err
    totals = done.json()["totals"]
    assert totals["written"] == totals["read"] > 13 and totals["conflicts"] == 0
    for table in report["tables"]:
        assert rows_in(supabase_db, table["table"]) == table["read"], table["table"]
    assert any(line.split()[:3] == ["parlant_sessions_events", "13", "13"]
               for line in done.err.splitlines())  # fmt: skip

    again = run_script(["migrate-local", home, "--table"], db_env)
    assert again.code == 0, again.err
    lines = again.out.splitlines()
    assert lines[0].split() == ["table", "read", "written", "skipped", "conflicts"]
    assert ["parlant_sessions_events", "13", "0", "13", "0"] in [line.split() for line in lines]


def test_a_document_changed_in_the_table_is_a_conflict_left_alone(
    parlant_home: Path, supabase_db: SupabaseTestDatabase, db_env: dict[str, str]
) -> None:
    assert run_script(["migrate-local", str(parlant_home)], db_env).code == 0
    table = f'"{supabase_db.schema}"."parlant_sessions_"'
    supabase_db.query(
        f"UPDATE {table} SET data = data || '{{\"title\": \"changed\"}}' "
        f"WHERE id = (SELECT min(id) FROM {table}) RETURNING id"
    )
    result = run_script(["migrate-local", str(parlant_home)], db_env)
    assert result.code == 1
    assert "conflicts in parlant_sessions_ (kept as they are)" in result.err
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("parlant-supabase-sync: error: 1 document(s) already in the tables")
    titles = [r[0] for r in supabase_db.query(f"SELECT data->>'title' FROM {table}")]
    assert "changed" in titles


def test_a_broken_file_writes_nothing_and_is_one_line(
    parlant_home: Path, supabase_db: SupabaseTestDatabase, db_env: dict[str, str]
) -> None:
    path = parlant_home / "customers.json"
    data = json.loads(path.read_text())
    data["customers"][0].pop("creation_utc")
    path.write_text(json.dumps(data))
    result = run_script(["migrate-local", str(parlant_home)], db_env)
    assert result.code == 1 and result.out == ""
    assert result.err.count("\n") == 1 and "nothing was migrated" in result.err
    assert rows_in(supabase_db, "parlant_sessions_events") == 0


def test_usage_errors_exit_2(cli: RunCli, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    for args in (
        [str(not_a_dir)],
        [str(tmp_path), "--prefix", "acme_"],
        [str(tmp_path), "--prefix", "acme_=nope"],
    ):
        result = cli("migrate-local", *args)
        assert result.code == 2, (args, result.err)
        assert result.err.count("\n") == 1 and "--help" in result.err
