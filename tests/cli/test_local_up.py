"""`parlant-supabase-sync local up` through the installed console script: ready to use."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from cli_helpers import SCRIPT, Result, run_script

from parlant_supabase_sync.local.cli_up import env_lines

_OURS = ("SUPABASE_", "PARLANT_SUPABASE_", "DATABASE_URL")
_JWT = r"[\w-]+\.[\w-]+\.[\w-]+"
_SECRET = r"sb_secret_[\w-]{22}_[0-9a-f]{8}"
UP_LINES = re.compile(
    r"SUPABASE_URL=http://127\.0\.0\.1:\d+\n"
    rf"SUPABASE_KEY=(?P<key>{_SECRET})\n"
    r"SUPABASE_SECRET_KEY=(?P=key)\n"
    r"SUPABASE_PUBLISHABLE_KEY=sb_publishable_[\w-]{22}_[0-9a-f]{8}\n"
    rf"SUPABASE_SERVICE_ROLE_KEY={_JWT}\n"
    rf"SUPABASE_ANON_KEY={_JWT}\n"
    r"SUPABASE_SCHEMA=public\n"
    r"DATABASE_URL=postgresql://postgres:[\w-]{32}@127\.0\.0\.1:\d+/postgres\n"
)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


class LocalUp:
    """`local up ARGS` in a subprocess, read until `ready`."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(SCRIPT), "local", "up", *args], env=clean_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(timeout=60)
                raise AssertionError(f"local up exited early: {self.stderr()}")
            if line == "ready\n":
                break
            lines.append(line)
        self.output = "".join(lines)
        self.env = dict(line.split("=", 1) for line in self.output.splitlines())

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def local_up() -> Iterator[type[LocalUp]]:
    started: list[LocalUp] = []

    class Tracked(LocalUp):
        def __init__(self, *args: str) -> None:
            super().__init__(*args)
            started.append(self)

    yield Tracked
    for up in started:
        up.close()


def sourced(env_file: Path, *command: str) -> Result:
    """`set -a; . FILE; set +a` in bash, then COMMAND, in an environment without our variables."""
    script = 'set -a; . "$1"; set +a; shift; exec "$@"'
    done = subprocess.run(
        ["bash", "-c", script, "bash", str(env_file), *command], env=clean_env(),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return Result(done.returncode, done.stdout, done.stderr)


def postgres_processes(port: str) -> list[int]:
    """PIDs whose command line names the cluster of this PostgreSQL port."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if f"parlant-supabase-{port}".encode() in fh.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def test_env_lines_survive_bash_quoting(tmp_path: Path) -> None:
    value = "it's $HOME `id` \"quoted\" \\ and\ttab; #hash"
    path = tmp_path / "env"
    path.write_text(env_lines({"PLAIN": "http://127.0.0.1:5432/x", "ODD": value}))
    assert path.read_text().startswith("PLAIN=http://127.0.0.1:5432/x\nODD='")
    shown = sourced(path, "python3", "-c", "import os; print(os.environ['ODD'], end='')")
    assert shown.code == 0 and shown.out == value


def test_env_file_is_sourced_by_bash_and_check_passes_with_no_note_then_ctrl_c_stops_it(
    local_up: type[LocalUp], tmp_path: Path
) -> None:
    env_file = tmp_path / "local.env"
    up = local_up("--env-file", str(env_file))
    assert env_file.read_text() == up.output
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert list(up.env) == [
        "SUPABASE_URL", "SUPABASE_KEY", "SUPABASE_SECRET_KEY", "SUPABASE_PUBLISHABLE_KEY",
        "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_ANON_KEY", "SUPABASE_SCHEMA", "DATABASE_URL",
    ]  # fmt: skip
    assert UP_LINES.fullmatch(up.output), up.output

    check = sourced(env_file, str(SCRIPT), "check")
    assert check.code == 0, check.err
    report = check.json()
    assert report["ok"] is True and report["key_kind"] == "secret"
    assert report["notes"] == [] and check.err == ""
    ls = sourced(env_file, str(SCRIPT), "ls", "--no-counts")
    assert ls.code == 0 and all(row["exists"] for row in ls.json())  # the schema is applied

    pg_port = up.env["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0]
    assert postgres_processes(pg_port)
    code, err = up.stop(signal.SIGINT)
    assert code == 130, err
    for key in ("SUPABASE_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_ANON_KEY"):
        assert up.env[key] not in err
    assert postgres_processes(pg_port) == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{up.env['SUPABASE_URL']}/rest/v1/", timeout=5)


def test_no_schema_creates_no_tables_limits_pass_through_and_sigterm_cleans_up(
    local_up: type[LocalUp],
) -> None:
    up = local_up("--no-schema", "--max-rows", "5", "--max-request-line", "200",
                  "--schemas", "public,extra_up", "--no-ddl-watch")  # fmt: skip
    ls = run_script(["ls", "--no-counts"], {**clean_env(), **up.env})
    assert ls.code == 0 and not any(row["exists"] for row in ls.json())
    url, key = up.env["SUPABASE_URL"], up.env["SUPABASE_KEY"]
    with psycopg.connect(up.env["DATABASE_URL"], autocommit=True) as conn:
        triggers = conn.execute("SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'pgrst%'")
        assert triggers.fetchone() == (0,)  # --no-ddl-watch
        conn.execute("CREATE TABLE up_rows AS SELECT generate_series(1, 8) AS n;"
                     "NOTIFY pgrst, 'reload schema'")  # fmt: skip
    headers = {"apikey": key, "Authorization": f"Bearer {key}"}

    def fetch() -> httpx.Response:
        return httpx.get(f"{url}/rest/v1/up_rows", params={"order": "n"}, headers=headers,
                         timeout=20)  # fmt: skip

    assert wait_until(lambda: fetch().status_code == 200)
    assert [row["n"] for row in fetch().json()] == [1, 2, 3, 4, 5]  # --max-rows 5
    long = httpx.get(f"{url}/rest/v1/x", params={"q": "a" * 300}, headers=headers, timeout=20)
    assert long.status_code == 414
    profile = httpx.get(f"{url}/rest/v1/x", headers={**headers, "Accept-Profile": "nope"},
                        timeout=20)  # fmt: skip
    assert profile.json()["hint"] == "Only the following schemas are exposed: public, extra_up"

    code, err = up.stop(signal.SIGTERM)
    assert code == 0, err
    data_dir = re.search(r"\(data dir (\S+)\)", err)
    assert data_dir is not None, err
    assert wait_until(lambda: not os.path.exists(data_dir.group(1)))  # a temporary cluster


def test_the_first_of_several_schemas_gets_the_tables(local_up: type[LocalUp]) -> None:
    up = local_up("--schemas", "parlant,public")
    assert up.env["SUPABASE_SCHEMA"] == "parlant"
    check = run_script(["check"], {**clean_env(), **up.env})
    assert check.code == 0, check.err
    assert check.json()["schema"] == "parlant" and check.json()["ok"] is True
    assert up.stop(signal.SIGINT)[0] == 130


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture
def shared_dir() -> Iterator[str]:
    """A directory the unprivileged server user can reach (pytest's tmp_path is root-only)."""
    path = tempfile.mkdtemp(prefix="pss-up-test-", dir="/tmp")
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_data_dir_keeps_port_keys_and_documents_and_falls_back_when_the_port_is_taken(
    local_up: type[LocalUp], shared_dir: str
) -> None:
    data_dir = os.path.join(shared_dir, "stack")
    first = local_up("--data-dir", data_dir)
    env = {**clean_env(), **first.env}
    doc = {"id": "kept", "version": "0.1.0", "creation_utc": "2026-01-01T00:00:00+00:00"}
    imported = run_script(["import", "sessions", "sessions"], env, input=json.dumps(doc) + "\n")
    assert imported.code == 0, imported.err
    assert first.stop()[0] == 0

    second = local_up("--data-dir", data_dir)
    assert second.env == first.env  # same URL (port), keys and DATABASE_URL
    assert run_script(["count", "sessions", "sessions"], env).out == "1\n"
    assert second.stop()[0] == 0

    port = int(first.env["SUPABASE_URL"].rsplit(":", 1)[1])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        third = local_up("--data-dir", data_dir)
        assert third.env["SUPABASE_URL"] != first.env["SUPABASE_URL"]
        assert third.env["SUPABASE_KEY"] == first.env["SUPABASE_KEY"]
        code, err = third.stop()
    assert code == 0
    assert f"the API port of the previous run ({port}) is taken" in err


def test_an_explicit_port_that_is_taken_is_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_script(["local", "up", "--port", port, "--no-schema"], clean_env())
    assert result.code == 1 and result.out == ""
    lines = result.err.strip().splitlines()
    assert lines[-1].startswith("parlant-supabase-sync: error: local up could not start:")
    assert port in lines[-1] and "Traceback" not in result.err
