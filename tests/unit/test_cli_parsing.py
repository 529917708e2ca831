"""CLI argument parsing, output formats and error lines that need no server."""

from __future__ import annotations

import io
import json
from typing import Any

import click
import pytest
from click.testing import CliRunner

from parlant_supabase_sync import api, bulk, cli, naming
from parlant_supabase_sync._types import Cursor, ObjectId, SortDirection
from parlant_supabase_sync.cli import Target
from parlant_supabase_sync.cli_output import Output, output_options
from parlant_supabase_sync.errors import ConfigurationError

SECRET = "sb_secret_AbCdEfGhIjKlMnOpQrStUv_12345678"


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SUPABASE_URL", "SUPABASE_KEY", "SUPABASE_SCHEMA"):
        monkeypatch.delenv(name, raising=False)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _targets(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> list[Target]:
    """The connection options a verb's command receives (no connection is made)."""
    seen: list[Target] = []
    monkeypatch.setattr(Target, "connect", lambda self: seen.append(self) or _Refused())
    CliRunner().invoke(cli.cli, argv, env={"SUPABASE_URL": None, "SUPABASE_KEY": None})
    return seen


class _Refused:
    def __enter__(self) -> None:
        raise click.ClickException("no connection in this test")

    def __exit__(self, *exc: object) -> None:
        return None


def test_connection_options_are_accepted_before_and_after_the_verb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _targets(["--url", "http://a", "--schema", "s", "count", "sessions", "events"],
                      monkeypatch)  # fmt: skip
    after = _targets(["count", "sessions", "events", "--url", "http://b", "--key", "k"],
                     monkeypatch)  # fmt: skip
    both = _targets(["--url", "http://a", "ls", "--url", "http://c"], monkeypatch)
    assert before == [Target(url="http://a", key=None, schema="s")]
    assert after == [Target(url="http://b", key="k", schema=None)]
    assert both == [Target(url="http://c")]


def test_output_format_defaults_to_json_and_nl_csv_table_select_others() -> None:
    seen: list[Output] = []

    @click.command()
    @output_options()
    def probe(output: Output) -> None:
        seen.append(output)

    for args in ([], ["--nl"], ["--csv"], ["--table"], ["--columns", "id, data.kind"]):
        assert CliRunner().invoke(probe, args).exit_code == 0
    assert seen == [
        Output("json"), Output("nl"), Output("csv"), Output("table"),
        Output("json", ("id", "data.kind")),
    ]  # fmt: skip


def test_nl_and_table_together_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["find", "s", "c", "--nl", "--table"], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "--nl and --table cannot be combined" in err


def test_unknown_verb_and_missing_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["frobnicate"], ["find", "sessions"], [], ["count", "a", "b", "extra"],
                 ["local"], ["find", "s", "c", "--nope"]):  # fmt: skip
        code, _, err = run(argv, capsys)
        assert code == 2, argv
        assert err.count("\n") == 1 and err.startswith("parlant-supabase-sync"), (argv, err)
        assert "--help" in err


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"a": {"$eq": NaN}}', "NaN is not a valid filter value"),
    ],
)
def test_bad_where_json_is_a_usage_error_before_any_request(
    where: str, fragment: str, capsys: pytest.CaptureFixture[str], no_env: None
) -> None:
    code, out, err = run(["find", "sessions", "events", "--where", where], capsys)
    assert code == 2
    assert out == ""
    assert fragment in err and err.count("\n") == 1


def test_bad_sort_and_limit_are_usage_errors(
    capsys: pytest.CaptureFixture[str], no_env: None
) -> None:
    assert run(["find", "s", "c", "--sort", "offset:sideways"], capsys)[0] == 2
    assert run(["find", "s", "c", "--limit", "-1"], capsys)[0] == 2
    assert run(["import", "s", "c", "--batch-size", "0"], capsys)[0] == 2
    assert run(["local", "up", "--port", "70000"], capsys)[0] == 2
    assert run(["local", "up", "--max-request-line", "3"], capsys)[0] == 2
    assert run(["local", "up", "--schemas", " , "], capsys)[0] == 2
    assert run(["migrate-local", "/no/such/dir"], capsys)[0] == 2
    assert run(["demo", "--events", "x"], capsys)[0] == 2


def test_missing_environment_names_the_variable_and_exits_2(
    capsys: pytest.CaptureFixture[str], no_env: None
) -> None:
    code, out, err = run(["count", "sessions", "events"], capsys)
    assert code == 2
    assert out == ""
    assert "SUPABASE_URL is not set" in err and err.count("\n") == 1


def test_the_key_is_never_printed_in_configuration_errors(
    capsys: pytest.CaptureFixture[str], no_env: None
) -> None:
    code, out, err = run(["--url", "ftp://nowhere", "--key", SECRET, "ls"], capsys)
    assert code == 2
    assert "SUPABASE_URL" in err
    assert SECRET not in err + out
    assert "AbCdEfGhIjKl" not in err + out


def test_sql_prints_schema_and_functions_for_the_default_stores(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["sql"], capsys)
    assert code == 0 and err == ""
    for table in (
        "parlant_sessions_",
        "parlant_customers_customer_tag_associations",
        "parlant_context_variables_values",
    ):
        assert f'"{table}"' in out
    assert "parlant_write" in out and "parlant_schema_report" in out


def test_sql_prefix_accepts_store_keys_prefixes_and_prefix_equals_store(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["sql", "--prefix", "sessions", "--prefix", "acme_=customers"], capsys)
    assert code == 0
    assert '"parlant_sessions_events"' in out
    assert '"acme_customers"' in out and '"acme_customer_tag_associations"' in out
    assert "parlant_customers_" not in out


def test_sql_unknown_prefix_layout_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["sql", "--prefix", "acme_"], capsys)
    assert code == 2 and out == ""
    assert "acme_=sessions" in err


def test_sql_functions_only_and_upgrade(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["sql", "--functions-only"], capsys)
    assert code == 0
    assert "parlant_sessions_" not in out and "parlant_write" in out
    code, out, _ = run(["sql", "--upgrade"], capsys)
    assert code == 0 and "COLLATE" in out and "failed_utc" in out
    assert run(["sql", "--upgrade", "--functions-only"], capsys)[0] == 2


def test_sql_allow_all_prints_the_generator_warning_on_stderr_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["sql", "--anon-policy", "allow-all"], capsys)
    assert code == 0
    assert "warning:" in err and "anon" in err
    assert "warning:" not in out
    _, _, quiet = run(["sql", "--anon-policy", "none"], capsys)
    assert quiet == ""


def test_every_verb_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for verb in (
        ["sql"], ["check"], ["ls"], ["count"], ["find"], ["get"], ["export"], ["import"],
        ["failed"], ["migrate-local"], ["local"], ["local", "up"], ["demo"],
    ):  # fmt: skip
        code, out, _ = run([*verb, "--help"], capsys)
        assert code == 0, verb
        assert "example" in out and f"parlant-supabase-sync {' '.join(verb)}" in out, verb


def test_local_up_and_demo_show_their_options_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    _, up, _ = run(["local", "up", "--help"], capsys)
    for option in ("--port", "--data-dir", "--env-file", "--no-schema", "--max-rows", "--locale",
                   "--max-request-line", "--schemas", "--no-ddl-watch"):  # fmt: skip
        assert option in up, option
    _, demo, _ = run(["demo", "--help"], capsys)
    assert "--events" in demo and "--quiet" in demo


def test_json_output_streams_an_array_and_nl_one_document_per_line() -> None:
    docs: list[dict[str, Any]] = [{"id": "a", "n": 1}, {"id": "b", "text": "ünï"}]
    out = io.StringIO()
    assert Output("json").rows(iter(docs), out) == 2
    assert json.loads(out.getvalue()) == docs
    out = io.StringIO()
    Output("nl").rows(iter(docs), out)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == docs
    out = io.StringIO()
    Output("json").rows(iter([]), out)
    assert json.loads(out.getvalue()) == []


def test_table_output_aligns_columns_and_shows_nested_values_as_json() -> None:
    out = io.StringIO()
    Output("table").rows([{"id": "a", "meta": {"k": 1}}, {"id": "bbb", "extra": True}], out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["id", "meta", "extra"]
    assert '{"k": 1}' in lines[2] and "true" in lines[3]


def test_columns_pick_fields_and_nested_paths_in_every_format() -> None:
    docs: list[dict[str, Any]] = [
        {"id": "a", "creation_utc": "t1", "data": {"kind": "message", "n": 1}, "x": 1},
        {"id": "b,c", "creation_utc": "t2", "data": {"kind": None}},
    ]
    columns = ("id", "data.kind", "missing")
    out = io.StringIO()
    Output("nl", columns).rows(docs, out)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"id": "a", "data.kind": "message", "missing": None},
        {"id": "b,c", "data.kind": None, "missing": None},
    ]
    out = io.StringIO()
    Output("csv", columns).rows(docs, out)
    assert out.getvalue() == 'id,data.kind,missing\na,message,\n"b,c",,\n'
    out = io.StringIO()
    Output("csv").rows(docs, out)
    assert out.getvalue().splitlines() == [
        "id,creation_utc,data,x",
        'a,t1,"{""kind"": ""message"", ""n"": 1}",1',
        '"b,c",t2,"{""kind"": null}",',
    ]
    out = io.StringIO()
    Output("table", ("id", "data.n")).rows(docs, out)
    assert out.getvalue().splitlines() == ["id   data.n", "---  ------", "a         1", "b,c       -"]


def test_cursor_text_round_trips_like_parlants_api() -> None:
    cursor = Cursor(creation_utc="2025-01-01T00:00:00+00:00", id=ObjectId("x|y"))
    assert api.decode_cursor(api.encode_cursor(cursor)) == cursor
    with pytest.raises(ConfigurationError, match="invalid cursor"):
        api.decode_cursor("not base64!")


def test_sort_specs_accept_strings_pairs_and_directions() -> None:
    assert api._sort("offset:desc") == [("offset", SortDirection.DESC)]
    assert api._sort([("a", "asc"), ("b", SortDirection.DESC)]) == [
        ("a", SortDirection.ASC),
        ("b", SortDirection.DESC),
    ]
    assert api._natural_order(api._sort("creation_utc:desc")) == (True, SortDirection.DESC)
    assert api._natural_order(api._sort("offset")) == (False, None)
    with pytest.raises(ConfigurationError):
        api._sort("a:up")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("[1]", "not a JSON object"),
        ('{"creation_utc": "t", "version": "1"}', "missing 'id'"),
        ('{"id": "a", "version": "1"}', "missing 'creation_utc'"),
        ('{"id": "a", "creation_utc": "t"}', "missing 'version'"),
        ('{"id": 1, "creation_utc": "t", "version": "1"}', "'id' must be a string"),
        ('{"id": "a", "creation_utc": "t", "version": "1", "x": NaN}', "NaN"),
        ('{"id": "a", "creation_utc": "t", "version": "1", "x": "a\\u0000b"}', "\\u0000"),
        ("{broken", "not valid JSON"),
    ],
)
def test_import_lines_that_do_not_fit_a_collection_are_refused_with_a_reason(
    line: str, fragment: str
) -> None:
    document, error = bulk.parse_line(line)
    assert document is None
    assert error is not None and fragment in error


def test_store_names_resolve_keys_prefixes_and_custom_prefixes() -> None:
    assert naming.resolve_store("sessions")[1] == "parlant_sessions_"
    assert naming.resolve_store("parlant_context_variables_")[0] == "context_variables"
    assert naming.resolve_store("acme_sessions_")[2] == ("sessions", "events", "metadata")
    assert naming.resolve_store("acme_")[2] == ()
    with pytest.raises(ConfigurationError, match="unknown store"):
        naming.resolve_store("no-such store")
    with pytest.raises(ConfigurationError, match="PREFIX=STORE"):
        naming.resolve_store("acme_=nope")


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from parlant_supabase_sync import __version__

    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"parlant-supabase-sync {__version__}"
