"""Supabase-like bootstrap, `LocalSupabase`, the pytest fixture and `local up`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from parlant_supabase_sync.local.bootstrap import bootstrap
from parlant_supabase_sync.local.postgres import PostgresServer

IS_ROOT = os.geteuid() == 0


def processes_with(marker: str) -> list[int]:
    """PIDs whose command line (or process title) contains `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{entry}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry))
    return found


def wait_until(condition: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


# ------------------------------------------------------------------------------------------
# bootstrap (PostgreSQL only)


@pytest.fixture(scope="module")
def bootstrapped() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        with psycopg.connect(server.superuser_dsn, autocommit=True) as conn:
            bootstrap(conn, authenticator_password=server.password_for("authenticator"))
        yield server


def as_role(server: PostgresServer, role: str, claims: dict[str, Any], sql: str) -> list[Any]:
    """Run `sql` the way PostgREST does: as authenticator, SET LOCAL ROLE, claims GUC."""
    with psycopg.connect(server.dsn("authenticator")) as conn:
        conn.execute("SELECT set_config('role', %s, true)", [role])
        conn.execute(
            "SELECT set_config('request.jwt.claims', %s, true)", [json.dumps({**claims, "role": role})]
        )
        return conn.execute(sql.encode()).fetchall()


def test_bootstrap_creates_supabase_roles_with_their_attributes(bootstrapped: PostgresServer) -> None:
    with psycopg.connect(bootstrapped.superuser_dsn) as conn:
        rows = conn.execute(
            "SELECT rolname, rolcanlogin, rolinherit, rolbypassrls, rolsuper FROM pg_roles"
            " WHERE rolname IN ('anon', 'authenticated', 'service_role', 'authenticator')"
            " ORDER BY rolname"
        ).fetchall()
        members = conn.execute(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid"
            " JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = 'authenticator' ORDER BY 1"
        ).fetchall()
        timeouts = dict(conn.execute(
            "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s JOIN pg_roles r"
            " ON r.oid = s.setrole WHERE r.rolname IN ('anon', 'authenticated')"
        ).fetchall())
    assert rows == [
        ("anon", False, False, False, False),
        ("authenticated", False, False, False, False),
        ("authenticator", True, False, False, False),
        ("service_role", False, False, True, False),
    ]
    assert [m[0] for m in members] == ["anon", "authenticated", "service_role"]
    assert timeouts == {"anon": ["statement_timeout=3s"], "authenticated": ["statement_timeout=8s"]}


def test_bootstrap_is_idempotent(bootstrapped: PostgresServer) -> None:
    with psycopg.connect(bootstrapped.superuser_dsn, autocommit=True) as conn:
        bootstrap(conn)
        bootstrap(conn)
        count = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname IN"
            " ('anon', 'authenticated', 'service_role', 'authenticator')"
        ).fetchone()
    assert count == (4,)


def test_new_public_tables_are_granted_to_the_api_roles(bootstrapped: PostgresServer) -> None:
    with psycopg.connect(bootstrapped.superuser_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE granted_by_default (id serial PRIMARY KEY, v text)")
    for role in ("anon", "authenticated", "service_role"):
        rows = as_role(
            bootstrapped, role, {},
            "INSERT INTO granted_by_default (v) VALUES (current_user) RETURNING v",
        )
        assert rows == [(role,)]


def test_auth_helpers_read_the_request_claims(bootstrapped: PostgresServer) -> None:
    sub = str(uuid.uuid4())
    rows = as_role(
        bootstrapped, "authenticated", {"sub": sub, "aud": "authenticated"},
        "SELECT auth.uid()::text, auth.role(), auth.jwt() ->> 'aud', current_user",
    )
    assert rows == [(sub, "authenticated", "authenticated", "authenticated")]
    assert as_role(bootstrapped, "anon", {}, "SELECT auth.uid(), auth.role()") == [(None, "anon")]


def test_per_customer_policy_from_the_seed_docs_works(bootstrapped: PostgresServer) -> None:
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(bootstrapped.superuser_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE policy_sessions (id text PRIMARY KEY, customer_id text, data jsonb);"
            "ALTER TABLE policy_sessions ENABLE ROW LEVEL SECURITY;"
            'CREATE POLICY "Users can access own sessions" ON policy_sessions FOR ALL'
            " USING (auth.uid()::text = customer_id) WITH CHECK (auth.uid()::text = customer_id);"
        )
        conn.execute(
            "INSERT INTO policy_sessions VALUES ('s1', %s, '{}'), ('s2', %s, '{}')", [alice, bob]
        )
    mine = as_role(bootstrapped, "authenticated", {"sub": alice}, "SELECT id FROM policy_sessions")
    assert mine == [("s1",)]
    assert as_role(bootstrapped, "anon", {}, "SELECT id FROM policy_sessions") == []
    everything = as_role(bootstrapped, "service_role", {}, "SELECT id FROM policy_sessions ORDER BY id")
    assert everything == [("s1",), ("s2",)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        as_role(
            bootstrapped, "authenticated", {"sub": alice},
            f"INSERT INTO policy_sessions VALUES ('s3', '{bob}', '{{}}') RETURNING id",
        )


def test_anon_statement_timeout_applies_when_the_role_setting_is_used(
    bootstrapped: PostgresServer,
) -> None:
    # PostgREST applies ALTER ROLE ... SET settings itself; here we only check they are stored
    # the way it reads them (pg_db_role_setting), with the values Supabase uses.
    with psycopg.connect(bootstrapped.superuser_dsn) as conn:
        rows = conn.execute(
            "SELECT r.rolname, unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r"
            " ON r.oid = s.setrole ORDER BY 1"
        ).fetchall()
    assert ("anon", "statement_timeout=3s") in rows
    assert ("authenticated", "statement_timeout=8s") in rows


# ------------------------------------------------------------------------------------------
# LocalSupabase (needs the gateway)

def test_local_supabase_env_has_all_client_settings(local_supabase: Any) -> None:
    env = local_supabase.env()
    assert list(env) == [
        "SUPABASE_URL", "SUPABASE_KEY", "SUPABASE_ANON_KEY", "SUPABASE_SECRET_KEY",
        "SUPABASE_PUBLISHABLE_KEY", "DATABASE_URL",
    ]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", env["SUPABASE_URL"])
    claims = jwt.decode(env["SUPABASE_KEY"], local_supabase.jwt_secret, algorithms=["HS256"])
    assert claims["role"] == "service_role"
    anon = jwt.decode(env["SUPABASE_ANON_KEY"], local_supabase.jwt_secret, algorithms=["HS256"])
    assert anon["role"] == "anon"
    assert env["SUPABASE_SECRET_KEY"].startswith("sb_secret_")
    assert env["SUPABASE_PUBLISHABLE_KEY"].startswith("sb_publishable_")
    password = local_supabase.postgres.password_for("postgres")
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", password)
    assert env["DATABASE_URL"].startswith(f"postgresql://postgres:{password}@127.0.0.1:")


def test_local_supabase_repr_shows_no_keys(local_supabase: Any) -> None:
    text = repr(local_supabase) + str(local_supabase)
    for secret in (
        local_supabase.jwt_secret, local_supabase.service_role_key, local_supabase.anon_key,
        local_supabase.secret_key, local_supabase.publishable_key,
    ):
        assert secret not in text


def test_rest_api_serves_a_new_table_to_every_service_key(local_supabase: Any) -> None:
    local_supabase.execute_sql(
        "CREATE TABLE IF NOT EXISTS stack_smoke (id text PRIMARY KEY, n int);"
        "TRUNCATE stack_smoke; INSERT INTO stack_smoke VALUES ('a', 1), ('b', 2);"
    )
    local_supabase.requests.clear()
    url = f"{local_supabase.url}/rest/v1/stack_smoke"
    with httpx.Client(timeout=20) as client:
        legacy = client.get(url, params={"select": "id,n", "order": "id"}, headers={
            "apikey": local_supabase.service_role_key,
            "Authorization": f"Bearer {local_supabase.service_role_key}",
        })
        opaque = client.get(url, params={"select": "id", "order": "id"},
                            headers={"apikey": local_supabase.secret_key})
    assert legacy.status_code == 200, legacy.text
    assert legacy.json() == [{"id": "a", "n": 1}, {"id": "b", "n": 2}]
    assert opaque.status_code == 200, opaque.text
    assert opaque.json() == [{"id": "a"}, {"id": "b"}]
    assert local_supabase.requests.count(method="GET", path_contains="stack_smoke") == 2


def test_max_rows_can_be_changed_while_running(local_supabase: Any) -> None:
    local_supabase.execute_sql(
        "CREATE TABLE IF NOT EXISTS stack_many (n int PRIMARY KEY);"
        "TRUNCATE stack_many; INSERT INTO stack_many SELECT generate_series(1, 10);"
    )
    headers = {"apikey": local_supabase.secret_key}
    url = f"{local_supabase.url}/rest/v1/stack_many"
    local_supabase.set_max_rows(3)
    try:
        capped = httpx.get(url, params={"order": "n"}, headers=headers, timeout=20)
    finally:
        local_supabase.set_max_rows(1000)
    uncapped = httpx.get(url, params={"order": "n"}, headers=headers, timeout=20)
    assert [r["n"] for r in capped.json()] == [1, 2, 3]
    assert len(uncapped.json()) == 10


def test_local_supabase_env_fixture_exports_the_variables(local_supabase_env: dict[str, str]) -> None:
    for name, value in local_supabase_env.items():
        assert os.environ[name] == value


@pytest.fixture
def shared_dir() -> Iterator[str]:
    """A directory the unprivileged server user can reach (pytest's tmp_path is root-only)."""
    path = tempfile.mkdtemp(prefix="pss-stack-test-", dir="/tmp")
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_reused_data_dir_keeps_data_and_keys_and_is_not_deleted(shared_dir: str) -> None:
    from parlant_supabase_sync.local import LocalSupabase
    from parlant_supabase_sync.local.stack import KEYS_FILE

    data_dir = os.path.join(shared_dir, "project")
    with LocalSupabase(data_dir=data_dir) as first:
        first.execute_sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here');")
        first_env = first.env()
    keys_file = os.path.join(data_dir, KEYS_FILE)
    assert os.stat(keys_file).st_mode & 0o777 == 0o600
    with LocalSupabase(data_dir=data_dir) as second:
        second_env = second.env()
        assert second.query("SELECT v FROM kept") == [("still here",)]
        response = httpx.get(f"{second.url}/rest/v1/kept", headers={"apikey": second.secret_key},
                             timeout=20)
    assert response.status_code == 200, response.text
    assert response.json() == [{"v": "still here"}]
    for name in ("SUPABASE_KEY", "SUPABASE_ANON_KEY", "SUPABASE_SECRET_KEY",
                 "SUPABASE_PUBLISHABLE_KEY"):
        assert first_env[name] == second_env[name]
    assert os.path.isfile(os.path.join(data_dir, "PG_VERSION"))


def test_stopped_local_supabase_leaves_nothing_behind() -> None:
    from parlant_supabase_sync.local import LocalSupabase

    stack = LocalSupabase()
    with stack:
        cluster = stack.postgres.cluster_name
        temp_dir = stack.postgres.temp_dir
        url = stack.url
    assert processes_with(cluster) == []
    assert temp_dir is not None and not os.path.exists(temp_dir)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/rest/v1/", timeout=2)
    assert "stopped" in repr(stack)


# ------------------------------------------------------------------------------------------
# `local up` (tests/cli/test_local_up.py covers its output, env file, schema, data dir and
# port; here: what the stand-in guarantees whatever kills the command)


class LocalUp:
    """`python -m parlant_supabase_sync local up ARGS` in a subprocess, read until `ready`."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parlant_supabase_sync", "local", "up", "--no-schema", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"local up exited early: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            if line == "ready\n":
                break
            lines.append(line)
        self.env = dict(line.split("=", 1) for line in "".join(lines).splitlines())
        url = self.env["DATABASE_URL"].strip("'\"")
        self.pg_port = int(url.rsplit(":", 1)[1].split("/")[0])
        self.cluster = f"parlant-supabase-{self.pg_port}"
        postmaster = [p for p in processes_with(self.cluster) if self._is_postmaster(p)]
        assert len(postmaster) == 1
        with open(f"/proc/{postmaster[0]}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
        self.temp_dir = os.path.dirname(argv[argv.index(b"-D") + 1].decode())

    @staticmethod
    def _is_postmaster(pid: int) -> bool:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().split(b"\0")[0].endswith(b"/postgres")

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


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGTERM, 0), (signal.SIGINT, 130), (signal.SIGKILL, -signal.SIGKILL)],
    ids=["SIGTERM", "SIGINT", "SIGKILL"],
)
def test_interrupted_local_up_leaves_no_postgres_and_no_temp_dir(
    local_up: type[LocalUp], sig: signal.Signals, code: int,
) -> None:
    up = local_up()
    assert processes_with(up.cluster)
    up.proc.send_signal(sig)
    up.proc.communicate(timeout=30)
    assert up.proc.returncode == code
    # After SIGKILL the supervisor notices its parent is gone and stops PostgreSQL.
    assert wait_until(lambda: not processes_with(up.cluster)), processes_with(up.cluster)
    assert wait_until(lambda: not os.path.exists(up.temp_dir))


def test_local_up_rejects_a_bad_port_before_starting_anything() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "parlant_supabase_sync", "local", "up", "--port", "70000"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""


def test_failed_start_stops_postgres_and_keeps_a_given_data_dir(shared_dir: str) -> None:
    from parlant_supabase_sync.local import LocalSupabase
    from parlant_supabase_sync.local.gateway import GatewayError

    data_dir = os.path.join(shared_dir, "project")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack = LocalSupabase(port=taken.getsockname()[1], data_dir=data_dir)
        with pytest.raises(GatewayError):
            stack.start()
    assert "stopped" in repr(stack)
    assert processes_with(data_dir) == []
    assert os.path.isfile(os.path.join(data_dir, "PG_VERSION"))
