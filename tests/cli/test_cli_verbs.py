"""Every verb of the installed `parlant-supabase-sync` script against the local stand-in."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import RunCli, StoreTables, event

from parlant_supabase_sync.local.stack import LocalSupabase

VERBS = [
    ["sql"], ["check"], ["ls"], ["count"], ["find"], ["get"], ["export"], ["import"],
    ["failed"], ["migrate-local"], ["local"], ["local", "up"], ["demo"],
]  # fmt: skip


def assert_one_line_error(err: str) -> None:
    assert err.count("\n") == 1, err
    assert err.startswith("parlant-supabase-sync"), err
    assert "Traceback" not in err


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verb_prints_help_with_an_example(cli: RunCli, verb: list[str]) -> None:
    result = cli(*verb, "--help", script=True)
    assert result.code == 0
    assert f"Usage: parlant-supabase-sync {' '.join(verb)} [OPTIONS]" in result.out
    assert "example" in result.out and f"parlant-supabase-sync {' '.join(verb)}" in result.out
    assert result.err == ""


def test_python_dash_m_runs_the_same_cli(cli_env: dict[str, str]) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "parlant_supabase_sync", "sql", "--functions-only"],
        check=False, env=cli_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "parlant_schema_report" in done.stdout


def test_sql_upgrade_drops_the_seed_policies_unless_told_to_keep_them(cli: RunCli) -> None:
    dropped = cli("sql", "--upgrade")
    assert dropped.code == 0 and dropped.err == ""
    assert 'DROP POLICY IF EXISTS "Allow all operations on parlant_sessions_"' in dropped.out
    kept = cli("sql", "--upgrade", "--keep-seed-policies", script=True)
    assert kept.code == 0
    assert "DROP POLICY" not in "\n".join(
        line for line in kept.out.splitlines() if not line.startswith("--")
    )
    warning = kept.err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("parlant-supabase-sync: warning: ")
    assert "anon" in warning[0] and "check" in warning[0]
    for args in (["--keep-seed-policies"], ["--upgrade", "--anon-policy", "allow-all"]):
        refused = cli("sql", *args)
        assert refused.code == 2 and refused.out == ""
        assert len(refused.err.strip().splitlines()) == 1


def test_sql_vectors_appends_the_vector_stores_tables_of_that_dimension(cli: RunCli) -> None:
    done = cli("sql", "--prefix", "all", "--vectors", "3072")
    assert done.code == 0 and done.err == ""
    assert "parlant_glossary_vectors_glossary" in done.out and "halfvec(3072)" in done.out
    assert "CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA extensions" in done.out
    for args in (
        ["--vectors", "0"],
        ["--vectors", "4001"],
        ["--functions-only", "--vectors", "64"],
    ):
        refused = cli("sql", *args)
        assert refused.code == 2 and refused.out == ""
        assert len(refused.err.strip().splitlines()) == 1, refused.err


# --- check / ls ----------------------------------------------------------------------------


def test_check_reports_missing_tables_and_says_to_run_sql(
    cli: RunCli, adapter_functions: None
) -> None:
    result = cli("check", "--prefix", "nothere_sessions_", script=True)
    assert result.code == 1
    report = result.json()
    assert report["key_role"] == "service_role" and report["key_kind"] == "legacy_jwt"
    assert "nothere_sessions_events" in report["missing_tables"]
    assert report["missing_functions"] == []
    assert (
        "parlant-supabase-sync sql --prefix nothere_sessions_ > schema.sql" in report["next_step"]
    )
    assert_one_line_error(result.err)


def test_check_on_a_ready_store_exits_0_and_shows_rls(
    cli: RunCli, cli_env: dict[str, str], make_store: Callable[[], StoreTables]
) -> None:
    store = make_store()
    result = cli("check", "--prefix", store.prefix)
    assert result.code == 0, result.err
    report = result.json()
    assert report["ok"] is True and report["next_step"].startswith("nothing to do")
    events = report["tables"][store.table("events")]
    assert events == {
        "exists": True, "adapter": True, "rls": True, "access": True, "policies": [],
        "grants": {"anon": [], "authenticated": [], "public": []},
    }  # fmt: skip
    assert report["exposed"] == {} and report["legacy_functions"] == []
    # The secret key (here given with --key) works as well as the legacy service_role JWT.
    secret = cli_env["SUPABASE_SECRET_KEY"]
    table = cli("check", "--prefix", store.prefix, "--table", "--key", secret)
    assert table.code == 0 and "next step: nothing to do" in table.out
    assert store.table("events") in table.out and "secret" in table.out
    assert secret not in table.out + table.err


def test_check_on_seed_created_tables_says_to_run_the_upgrade(
    cli: RunCli, local_supabase: LocalSupabase, adapter_functions: None
) -> None:
    prefix = "seedcli_sessions_"
    tables = [prefix, f"{prefix}events", f"{prefix}metadata", f"{prefix}_failed_migrations",
              f"{prefix}events_failed_migrations"]  # fmt: skip
    sql = ""
    for name in tables:
        if name.endswith("_failed_migrations"):
            sql += f"CREATE TABLE IF NOT EXISTS \"{name}\" (id TEXT, data JSONB DEFAULT '{{}}'::jsonb);"
        else:
            sql += (
                f'CREATE TABLE IF NOT EXISTS "{name}" (id TEXT NOT NULL PRIMARY KEY, version TEXT, '
                "creation_utc TEXT, session_id TEXT, customer_id TEXT, agent_id TEXT, "
                "data JSONB NOT NULL DEFAULT '{}'::jsonb);"
            )
        sql += f'GRANT ALL ON "{name}" TO service_role;'
    local_supabase.execute_sql(sql)
    try:
        result = cli("check", "--prefix", prefix)
        assert result.code == 1
        assert f"sql --prefix {prefix} --upgrade" in result.json()["next_step"]
        assert "--upgrade" in result.err
    finally:
        local_supabase.execute_sql("".join(f'DROP TABLE "{n}";' for n in tables))


def test_without_the_report_function_check_and_ls_probe_each_table(
    cli: RunCli, make_store: Callable[[], StoreTables], local_supabase: LocalSupabase
) -> None:
    from parlant_supabase_sync import ddl

    store = make_store()
    store.insert_sql("events", [event(1)])
    local_supabase.execute_sql("DROP FUNCTION public.parlant_schema_report(text[])")
    try:
        result = cli("check", "--prefix", store.prefix)
        assert result.code == 1 and result.out, result.err
        report = result.json()
        assert report["functions"] == {
            "parlant_write": True,
            "parlant_find": True,
            "parlant_schema_report": False,
        }
        assert report["missing_tables"] == []
        assert "--upgrade" in report["next_step"]
        listing = cli("ls", store.prefix)
        assert listing.code == 0, listing.err
        rows = {r["collection"]: r for r in listing.json()}
        assert rows["events"]["exists"] is True and rows["events"]["documents"] == 1
    finally:
        local_supabase.execute_sql(ddl.generate_functions())


@pytest.mark.parametrize(
    ("drop", "missing"),
    [
        ("DROP FUNCTION public.parlant_write(text, text, text, jsonb)", "parlant_write"),
        ("DROP TABLE public.parlant_write_receipts", "parlant_write_receipts"),
    ],
)
def test_check_fails_without_the_write_function_or_its_receipts_and_names_the_command(
    cli: RunCli,
    make_store: Callable[[], StoreTables],
    local_supabase: LocalSupabase,
    drop: str,
    missing: str,
) -> None:
    from parlant_supabase_sync import ddl

    store = make_store()
    local_supabase.execute_sql(drop)
    try:
        result = cli("check", "--prefix", store.prefix)
        assert result.code == 1, result.err
        report = result.json()
        assert report["missing_functions"] == [missing]
        assert "sql --functions-only" in report["next_step"]
    finally:
        local_supabase.execute_sql(ddl.generate_functions())


def test_check_names_tables_the_key_may_not_use_and_says_to_run_the_upgrade(
    cli: RunCli, make_store: Callable[[], StoreTables], local_supabase: LocalSupabase
) -> None:
    store = make_store()
    local_supabase.execute_sql(f'REVOKE ALL ON public."{store.table("events")}" FROM service_role')
    result = cli("check", "--prefix", store.prefix)
    assert result.code == 1
    report = result.json()
    assert report["no_access"] == [store.table("events")]
    assert "--upgrade" in report["next_step"] and store.table("events") in report["next_step"]


def test_check_with_the_anon_key_says_to_use_a_server_key(
    cli: RunCli, cli_env: dict[str, str], make_store: Callable[[], StoreTables]
) -> None:
    store = make_store()
    for key in (cli_env["SUPABASE_ANON_KEY"], cli_env["SUPABASE_PUBLISHABLE_KEY"]):
        result = cli("check", "--prefix", store.prefix, env={"SUPABASE_KEY": key})
        # Refused before any request, in one line that says which key to use.
        assert result.code == 1 and result.out == ""
        lines = result.err.strip().splitlines()
        assert len(lines) == 1, result.err
        assert "anon" in lines[0] and "sb_secret_" in lines[0] and "service_role" in lines[0]
        assert "PARLANT_SUPABASE_ALLOW_PUBLIC_KEY=1" in lines[0]
        assert key not in result.out + result.err


def test_ls_lists_collections_tables_and_counts(
    cli: RunCli, make_store: Callable[[], StoreTables]
) -> None:
    store = make_store()
    store.insert_sql("events", [event(i) for i in range(7)])
    store.insert_sql("sessions", [{"id": "s1", "version": "0.9.0", "creation_utc": "t"}])
    rows = cli("ls", store.prefix, script=True).json()
    by_collection = {row["collection"]: row for row in rows}
    assert by_collection["events"] == {
        "store": store.prefix, "collection": "events", "table": store.table("events"),
        "exists": True, "documents": 7, "failed": 0,
    }  # fmt: skip
    assert by_collection["sessions"]["documents"] == 1
    assert by_collection["metadata"]["failed"] is None
    table = cli("ls", store.prefix, "--table")
    assert table.code == 0 and store.table("events") in table.out


# --- count / find / get ----------------------------------------------------------------------


@pytest.fixture
def events_store(make_store: Callable[[], StoreTables]) -> StoreTables:
    store = make_store()
    store.insert_sql("events", [event(i, session="s1" if i < 30 else "s2") for i in range(40)])
    return store


def test_count_with_and_without_a_filter(cli: RunCli, events_store: StoreTables) -> None:
    p = events_store.prefix
    assert cli("count", p, "events", script=True).out == "40\n"
    assert cli("count", p, "events", "--where", '{"session_id": {"$eq": "s2"}}').out == "10\n"
    # typed jsonb comparisons: offset is a number, deleted a boolean
    assert cli("count", p, "events", "--where", '{"offset": {"$gte": 9}}').out == "31\n"
    assert cli("count", p, "events", "--where", '{"deleted": {"$eq": true}}').out == "4\n"


def test_find_with_where_prints_json_array_or_lines(cli: RunCli, events_store: StoreTables) -> None:
    p = events_store.prefix
    where = '{"session_id": {"$eq": "s2"}, "offset": {"$lt": 33}}'
    docs = cli("find", p, "events", "--where", where, script=True).json()
    assert [d["offset"] for d in docs] == [30, 31, 32]
    assert docs[0] == event(30, session="s2")
    lines = cli("find", p, "events", "--where", where, "--nl").lines()
    assert lines == docs
    table = cli("find", p, "events", "--where", where, "--table")
    assert table.code == 0 and "ev-000031" in table.out


def test_find_pages_with_limit_and_the_printed_cursor(
    cli: RunCli, events_store: StoreTables
) -> None:
    p = events_store.prefix
    first = cli("find", p, "events", "--limit", "15")
    assert [d["offset"] for d in first.json()] == list(range(15))
    cursor = first.err.split("--cursor ")[1].strip()
    second = cli("find", p, "events", "--limit", "30", "--cursor", cursor)
    assert [d["offset"] for d in second.json()] == list(range(15, 40))
    assert second.err == ""  # last page: no cursor


def test_find_sorts_by_a_document_field(cli: RunCli, events_store: StoreTables) -> None:
    docs = cli(
        "find", events_store.prefix, "events", "--sort", "offset:desc", "--limit", "3"
    ).json()
    assert [d["offset"] for d in docs] == [39, 38, 37]
    every = cli("find", events_store.prefix, "events", "--sort", "offset:desc", "--nl").lines()
    assert [d["offset"] for d in every] == list(range(39, -1, -1))


@pytest.mark.slow
def test_a_sorted_listing_of_2500_documents_pages_past_max_rows(
    cli: RunCli, make_store: Callable[[], StoreTables], local_supabase: LocalSupabase
) -> None:
    store = make_store()
    store.insert_sql("events", [event(i) for i in range(2500)])
    local_supabase.set_max_rows(1000)
    every = cli("find", store.prefix, "events", "--sort", "offset:desc", "--nl")
    assert every.code == 0, every.err
    assert [d["offset"] for d in every.lines()] == list(range(2499, -1, -1))
    some = cli("find", store.prefix, "events", "--sort", "offset:desc", "--limit", "1800")
    assert [d["offset"] for d in some.json()] == list(range(2499, 699, -1))
    assert "more documents: 1800 of 2500 shown" in some.err


def test_get_prints_one_document_or_exits_1(cli: RunCli, events_store: StoreTables) -> None:
    found = cli("get", events_store.prefix, "events", "ev-000005", script=True)
    assert found.code == 0 and found.json() == event(5)
    missing = cli("get", events_store.prefix, "events", "nope")
    assert missing.code == 1 and "no document with id 'nope'" in missing.err
    assert_one_line_error(missing.err)


# --- expected failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        ("{oops", "Invalid value for '--where': not valid JSON"),
        ('"text"', "must be a JSON object"),
        ('{"a": {"$regex": "x"}}', "$regex"),
    ],
)
def test_bad_filters_exit_2_with_one_line(
    cli: RunCli, events_store: StoreTables, where: str, fragment: str
) -> None:
    result = cli("find", events_store.prefix, "events", "--where", where, script=True)
    assert result.code == 2
    assert fragment in result.err and result.out == ""
    assert_one_line_error(result.err)


def test_missing_table_says_how_to_create_it(cli: RunCli, adapter_functions: None) -> None:
    result = cli("count", "absent_sessions_", "events", script=True)
    assert result.code == 1
    assert "absent_sessions_events" in result.err and "parlant-supabase-sync sql" in result.err
    assert_one_line_error(result.err)


def test_a_failed_export_leaves_no_file(
    cli: RunCli, adapter_functions: None, tmp_path: Path
) -> None:
    target = tmp_path / "events.jsonl"
    result = cli("export", "absent_sessions_", "events", "-o", str(target), script=True)
    assert result.code == 1 and "absent_sessions_events" in result.err
    assert_one_line_error(result.err)
    assert list(tmp_path.iterdir()) == []


def test_export_into_an_existing_directory_writes_a_file_there(
    cli: RunCli, events_store: StoreTables, tmp_path: Path
) -> None:
    result = cli("export", events_store.prefix, "events", "-o", str(tmp_path), script=True)
    assert result.code == 0, result.err
    [written] = list(tmp_path.iterdir())
    assert written.name == f"{events_store.prefix}.events.jsonl"
    assert len(written.read_text().splitlines()) == 40
    assert f"exported 40 document(s) of events to {written}" in result.err


def test_export_to_a_bad_target_fails_before_the_first_request(
    cli: RunCli, events_store: StoreTables, local_supabase: LocalSupabase, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("not a directory")
    local_supabase.requests.clear()
    for output in (str(tmp_path / "file"), str(tmp_path / "no" / "such" / "events.jsonl")):
        collections = ["events", "sessions"] if output.endswith("file") else ["events"]
        result = cli("export", events_store.prefix, *collections, "-o", output)
        assert result.code == 2, result.err
        assert_one_line_error(result.err)
    assert local_supabase.requests.entries() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_import_of_non_utf8_input_is_one_line(
    cli: RunCli, events_store: StoreTables, tmp_path: Path
) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(event(90)).encode() + b"\n" + b'{"id": "caf\xe9"}\n')
    result = cli("import", events_store.prefix, "events", str(path), script=True)
    assert result.code == 1 and "line 2: not UTF-8" in result.err
    assert_one_line_error(result.err)
    assert cli("get", events_store.prefix, "events", "ev-000090").code == 1  # nothing written


def test_a_wrong_key_is_reported_without_printing_it(
    cli: RunCli, events_store: StoreTables
) -> None:
    wrong = "sb_secret_WrongWrongWrongWrongWr_abcdefgh"
    result = cli("count", events_store.prefix, "events", env={"SUPABASE_KEY": wrong}, script=True)
    assert result.code == 1
    assert "API key" in result.err and "SUPABASE_KEY" in result.err
    assert "WrongWrong" not in result.err + result.out
    assert_one_line_error(result.err)


@pytest.mark.parametrize("verb", [["ls"], ["count", "sessions", "events"]], ids=" ".join)
def test_an_unreachable_url_is_one_line(cli: RunCli, closed_port: int, verb: list[str]) -> None:
    result = cli(*verb, env={"SUPABASE_URL": f"http://127.0.0.1:{closed_port}"}, script=True)
    assert result.code == 1
    assert "could not reach Supabase" in result.err
    assert_one_line_error(result.err)


def test_verbose_shows_the_retries(cli: RunCli, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    result = cli("count", "sessions", "events", "-v", env={"SUPABASE_URL": url}, script=True)
    assert result.code == 1
    assert "retry" in result.err and result.err.count("\n") > 1


def test_a_prefix_that_names_no_store_is_a_usage_error(cli: RunCli) -> None:
    result = cli("ls", "acme_")
    assert result.code == 2
    assert "acme_=sessions" in result.err
    assert_one_line_error(result.err)


def test_missing_environment_variables_exit_2(cli: RunCli) -> None:
    result = cli("ls", env={"SUPABASE_URL": "", "SUPABASE_KEY": ""}, script=True)
    assert result.code == 2
    assert "SUPABASE_URL is not set" in result.err
    assert_one_line_error(result.err)


# --- export / import -------------------------------------------------------------------------


def test_export_writes_every_document_as_json_lines(
    cli: RunCli, events_store: StoreTables, tmp_path: Path
) -> None:
    out = cli("export", events_store.prefix, "events", script=True)
    assert out.code == 0
    assert out.lines() == [event(i, session="s1" if i < 30 else "s2") for i in range(40)]
    folder = tmp_path / "backup"
    result = cli("export", events_store.prefix, "--output", str(folder))
    assert result.code == 0
    p = events_store.prefix
    assert sorted(f.name for f in folder.iterdir()) == [
        f"{p}.events.jsonl", f"{p}.metadata.jsonl", f"{p}.sessions.jsonl",
    ]  # fmt: skip
    assert len((folder / f"{p}.events.jsonl").read_text().splitlines()) == 40
    several = cli("export", events_store.prefix, "events", "sessions")
    assert several.code == 2 and "-o DIR" in several.err


def test_export_import_round_trip_of_5000_documents_is_identical_and_idempotent(
    cli: RunCli,
    make_store: Callable[[], StoreTables],
    local_supabase: LocalSupabase,
    tmp_path: Path,
) -> None:
    source, target = make_store(), make_store()
    source.insert_sql("events", [event(i, session=f"s{i % 7}") for i in range(5000)])
    local_supabase.set_max_rows(1000)  # Supabase's default cap: export must page past it
    dump = tmp_path / "events.jsonl"
    assert cli("export", source.prefix, "events", "-o", str(dump), script=True).code == 0
    assert len(dump.read_text().splitlines()) == 5000

    dry = cli("import", target.prefix, "events", str(dump), "--dry-run", script=True)
    assert dry.code == 0, dry.err
    assert dry.json()["new"] == 5000 and dry.json()["written"] == 0
    assert "dry run: would write 5000 of 5000" in dry.err
    assert target.count_rows(target.table("events")) == 0

    first = cli("import", target.prefix, "events", str(dump), script=True)
    assert first.code == 0, first.err
    assert first.json()["written"] == 5000
    again = cli("export", target.prefix, "events", "-o", str(tmp_path / "again.jsonl"))
    assert again.code == 0
    assert (tmp_path / "again.jsonl").read_bytes() == dump.read_bytes()

    rerun = cli("import", target.prefix, "events", str(dump))
    assert rerun.code == 0
    assert rerun.json()["written"] == 0 and rerun.json()["unchanged"] == 5000
    assert target.count_rows(target.table("events")) == 5000


def test_import_with_a_different_document_under_an_existing_id_writes_nothing_unless_told(
    cli: RunCli, events_store: StoreTables
) -> None:
    changed = event(3, session="s1", kind="status")
    text = "\n".join(json.dumps(d) for d in (event(2), changed, event(100))) + "\n"
    p = events_store.prefix
    refused = cli("import", p, "events", input=text, script=True)
    assert refused.code == 1 and refused.out == ""
    assert "line 2, id 'ev-000003'" in refused.err and "--replace" in refused.err
    assert_one_line_error(refused.err)
    assert cli("get", p, "events", "ev-000100").code == 1

    dry = cli("import", p, "events", "--dry-run", input=text)
    assert dry.code == 1 and dry.json()["changed"] == 1 and dry.json()["written"] == 0
    assert "--replace or --ignore" in dry.err

    ignored = cli("import", p, "events", "--ignore", input=text)
    assert ignored.code == 0, ignored.err
    report = ignored.json()
    assert (report["new"], report["unchanged"], report["changed"], report["written"]) == (
        1,
        1,
        1,
        1,
    )
    assert cli("get", p, "events", "ev-000003").json()["kind"] == "message"

    replaced = cli("import", p, "events", "--replace", input=text)
    assert replaced.code == 0, replaced.err
    assert cli("get", p, "events", "ev-000003").json()["kind"] == "status"
    both = cli("import", p, "events", "--replace", "--ignore", input=text)
    assert both.code == 2 and "cannot be combined" in both.err


def test_import_with_an_invalid_line_anywhere_writes_nothing_and_names_it(
    cli: RunCli, make_store: Callable[[], StoreTables], tmp_path: Path
) -> None:
    store = make_store()
    lines = [json.dumps(event(i)) for i in range(1200)]
    lines[700] = '{"id": "ev-000700", "version": "0.9.0"}'  # no creation_utc
    lines[900] = json.dumps(event(900)).replace('"offset": 900', '"offset": NaN')
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    for dry_run in ([], ["--dry-run"]):
        result = cli("import", store.prefix, "events", str(path), *dry_run, script=not dry_run)
        assert result.code == 1 and result.out == ""
        assert "line 701: missing 'creation_utc'" in result.err and "901" in result.err
        assert_one_line_error(result.err)
    assert store.count_rows(store.table("events")) == 0

    path.write_text("\n".join(json.dumps(event(i)) for i in range(1200)) + "\n")
    fixed = cli("import", store.prefix, "events", str(path), "--batch-size", "300")
    assert fixed.code == 0 and fixed.json()["written"] == 1200
    again = cli("import", store.prefix, "events", str(path))
    assert again.code == 0 and again.json()["written"] == 0 and again.json()["unchanged"] == 1200


# --- failed migrations -----------------------------------------------------------------------


def test_failed_lists_and_restores_fixed_documents(
    cli: RunCli, make_store: Callable[[], StoreTables], local_supabase: LocalSupabase
) -> None:
    store = make_store()
    failed = store.failed_table("events")
    good = event(1)
    broken = {"id": "ev-broken", "version": "0.8.0"}  # still lacks creation_utc
    local_supabase.execute_sql(
        f'INSERT INTO "{failed}" (id, data, failed_utc) VALUES '
        f"('ev-000001', '{json.dumps(good)}'::jsonb, '2025-02-01T00:00:00+00:00'),"
        f"('ev-broken', '{json.dumps(broken)}'::jsonb, NULL)"
    )
    listed = cli("failed", store.prefix, script=True).json()
    assert {(d["collection"], d["id"]) for d in listed} == {
        ("events", "ev-000001"),
        ("events", "ev-broken"),
    }
    assert next(d for d in listed if d["id"] == "ev-000001")["document"] == good

    result = cli(
        "failed",
        store.prefix,
        "events",
        "--restore",
        "ev-000001",
        "ev-broken",
        "ev-none",
        script=True,
    )
    assert result.code == 1
    outcome = {d["id"]: d for d in result.json()}
    assert outcome["ev-000001"]["restored"] is True
    assert (
        outcome["ev-broken"]["restored"] is False
        and "creation_utc" in outcome["ev-broken"]["message"]
    )
    assert outcome["ev-none"]["restored"] is False
    assert cli("get", store.prefix, "events", "ev-000001").json() == good
    remaining = [d["id"] for d in cli("failed", store.prefix, "events").json()]
    assert remaining == ["ev-broken"]

    needs_collection = cli("failed", store.prefix, "--restore", "x")
    assert needs_collection.code == 2


def test_failed_restore_refuses_to_overwrite_a_different_document(
    cli: RunCli, events_store: StoreTables, local_supabase: LocalSupabase
) -> None:
    failed = events_store.failed_table("events")
    other = event(2, kind="status")
    local_supabase.execute_sql(
        f"INSERT INTO \"{failed}\" (id, data) VALUES ('ev-000002', '{json.dumps(other)}'::jsonb)"
    )
    result = cli("failed", events_store.prefix, "events", "--restore", "ev-000002")
    assert result.code == 1 and "different document" in result.err
    assert events_store.count_rows(failed) == 1
    assert cli("get", events_store.prefix, "events", "ev-000002").json() == event(2)


def test_cursor_printed_by_find_is_parlants_api_format(
    cli: RunCli, events_store: StoreTables
) -> None:
    first = cli("find", events_store.prefix, "events", "--limit", "1")
    cursor = first.err.split("--cursor ")[1].strip()
    assert base64.b64decode(cursor).decode() == f"{event(0)['creation_utc']}|ev-000000"


# --- demo ----------------------------------------------------------------------------------


def test_demo_is_a_subcommand_whose_options_show_in_its_help(cli: RunCli) -> None:
    result = cli("demo", "--help", script=True)
    assert result.code == 0
    assert "--events" in result.out and "--quiet" in result.out
    refused = cli("demo", "--events", "-1")
    assert refused.code == 2 and "--events" in refused.err
    assert_one_line_error(refused.err)


@pytest.mark.slow
def test_check_notes_a_database_collation_that_is_not_code_point_order(
    cli: RunCli, make_store: Callable[[], StoreTables]
) -> None:
    from parlant_supabase_sync import ddl
    from parlant_supabase_sync.api import connect

    store = make_store()
    assert not any(
        "collation" in note for note in cli("check", "--prefix", store.prefix).json()["notes"]
    )
    with LocalSupabase(locale="icu:en-US") as other:
        prefix = store.prefix
        other.execute_sql(
            ddl.generate_schema(
                {prefix: ("sessions", "events", "metadata")}, include_functions=True
            )
        )
        with connect(url=other.url, key=other.secret_key) as db:
            notes = db.check([prefix]).notes
    assert any("collation is 'icu:en-US'" in note for note in notes), notes
