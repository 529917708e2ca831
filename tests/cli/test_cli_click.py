"""The click group: completion, output options, progress, and the one place for error lines."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Callable

import click
import pytest
from cli_helpers import PROG, SCRIPT, RunCli, StoreTables, event, run_in_process

from parlant_supabase_sync import cli, cli_output
from parlant_supabase_sync.errors import ConfigurationError, SupabaseSyncError, TableMissing


def completion(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT)], env={**os.environ, **env}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_completion_script_is_produced_for_each_shell(shell: str) -> None:
    done = completion({"_PARLANT_SUPABASE_SYNC_COMPLETE": f"{shell}_source"})
    assert done.returncode == 0, done.stderr
    assert "_PARLANT_SUPABASE_SYNC_COMPLETE" in done.stdout and done.stderr == ""
    if shell == "bash":
        assert "complete -o nosort -F _parlant_supabase_sync_completion parlant-supabase-sync" in (
            done.stdout
        )


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("parlant-supabase-sync lo", {"local"}),
        ("parlant-supabase-sync m", {"migrate-local"}),
        ("parlant-supabase-sync count ses", {"sessions"}),
        ("parlant-supabase-sync count se", {"sessions", "services"}),
        ("parlant-supabase-sync local up --no-", {"--no-schema", "--no-ddl-watch"}),
        ("parlant-supabase-sync find sessions events --c", {"--cursor", "--csv", "--columns"}),
    ],
)
def test_bash_completion_offers_verbs_stores_and_options(words: str, expected: set[str]) -> None:
    done = completion({
        "_PARLANT_SUPABASE_SYNC_COMPLETE": "bash_complete",
        "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1),
    })  # fmt: skip
    assert done.returncode == 0, done.stderr
    offered = {line.split(",", 1)[1] for line in done.stdout.splitlines()}
    assert offered == expected


# --- one place for error lines and exit codes -------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code", "fragment"),
    [
        (click.UsageError("bad option"), 2, "bad option"),
        (cli_output.CommandFailed("not ready"), 1, "not ready"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (click.Abort(), 130, "interrupted"),
        (ConfigurationError("SUPABASE_URL is not set"), 2, "SUPABASE_URL is not set"),
        (TableMissing("no table t"), 1, "no table t"),
        (SupabaseSyncError("refused"), 1, "refused"),
        (PermissionError(13, "Permission denied"), 1, "Permission denied"),
        (RuntimeError("a bug"), 1, "unexpected RuntimeError: a bug"),
    ],
)
def test_describe_gives_each_failure_its_exit_code_and_line(
    exc: BaseException, code: int, fragment: str
) -> None:
    got, text = cli_output.describe(exc)
    assert got == code and text is not None and fragment in text


@pytest.fixture
def failing(monkeypatch: pytest.MonkeyPatch) -> Callable[[BaseException], None]:
    """Add a verb `boom` to the real group that raises the given exception."""

    def install(exc: BaseException) -> None:
        @click.command("boom")
        def boom() -> None:
            raise exc

        monkeypatch.setitem(cli.cli.commands, "boom", boom)

    return install


def test_ctrl_c_in_a_verb_exits_130_with_one_line(
    failing: Callable[[BaseException], None],
) -> None:
    failing(KeyboardInterrupt())
    result = run_in_process(["boom"], {})
    assert result.code == 130 and result.out == ""
    assert result.err.strip().splitlines()[-1] == f"{PROG}: error: interrupted"


def test_error_lines_hide_the_key_from_the_environment_and_from_key(
    failing: Callable[[BaseException], None],
) -> None:
    env_key, arg_key = "plain-env-secret-123", "plain-arg-secret-456"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2ln"
    failing(SupabaseSyncError(f"server said {env_key} / {arg_key} / {jwt}\nand more"))
    result = run_in_process(["--key", arg_key, "boom"], {"SUPABASE_KEY": env_key})
    assert result.code == 1
    assert result.err.count("\n") == 1 and "server said [redacted] / [redacted]" in result.err
    for secret in (env_key, arg_key, jwt):
        assert secret not in result.err


def test_an_unexpected_exception_is_one_line_and_verbose_shows_the_traceback(
    failing: Callable[[BaseException], None],
) -> None:
    failing(RuntimeError("a bug"))
    quiet = run_in_process(["boom"], {})
    assert quiet.code == 1 and quiet.err.count("\n") == 1
    assert "unexpected RuntimeError: a bug (run with -v for the traceback)" in quiet.err
    loud = run_in_process(["-v", "boom"], {})
    assert loud.code == 1 and "Traceback" in loud.err and "RuntimeError: a bug" in loud.err


def test_a_closed_pipe_ends_quietly() -> None:
    done = subprocess.run(
        f"'{SCRIPT}' sql | head -c 10 > /dev/null; exit ${{PIPESTATUS[0]}}", shell=True,
        executable="/bin/bash", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.stderr == ""
    assert done.returncode in (0, 1)  # 0 when the output fit into the pipe before head left


# --- output options and progress ---------------------------------------------------------------


def test_csv_table_and_columns_on_real_listings(
    cli: RunCli, make_store: Callable[[], StoreTables]
) -> None:
    store = make_store()
    store.insert_sql("events", [event(i) for i in range(3)])
    p = store.prefix
    csv = cli("find", p, "events", "--csv", "--columns", "id,offset,data.participant", script=True)
    assert csv.code == 0, csv.err
    assert csv.out.splitlines() == [
        "id,offset,data.participant",
        'ev-000000,0,"{""display_name"": null}"',
        'ev-000001,1,"{""display_name"": null}"',
        'ev-000002,2,"{""display_name"": null}"',
    ]
    nl = cli("find", p, "events", "--nl", "--columns", "id,kind")
    assert nl.lines() == [{"id": f"ev-00000{i}", "kind": "message"} for i in range(3)]
    table = cli("ls", p, "--table", "--columns", "collection,documents")
    assert table.out.splitlines()[0].split() == ["collection", "documents"]
    assert any(line.split() == ["events", "3"] for line in table.out.splitlines())
    got = cli("get", p, "events", "ev-000001", "--columns", "id,offset")
    assert got.json() == {"id": "ev-000001", "offset": 1}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_only_on_a_terminal() -> None:
    piped = io.StringIO()
    with cli_output.Progress(stream=piped) as progress:
        progress.begin("export events", 3)
        progress.advance(3)
    assert piped.getvalue() == ""

    terminal = _Terminal()
    with cli_output.Progress(stream=terminal) as progress:
        progress.begin("export events", 3)
        progress.advance(3)
        progress.begin("import events", None)
        progress.advance(2)
    assert "export events" in terminal.getvalue() and "import events" in terminal.getvalue()

    lines = io.StringIO()
    with cli_output.Progress(lines=True, stream=lines) as progress:
        progress.begin("creating 12 events", 12)
        for _ in range(12):
            progress.advance()
    assert lines.getvalue().splitlines() == [
        f"creating 12 events… {n}/12" for n in (2, 4, 6, 8, 10, 12)
    ]
