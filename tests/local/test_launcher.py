"""PostgreSQL launcher: start, stop, privileges, data-dir reuse and no orphans."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator

import psycopg
import pytest

from parlant_supabase_sync.local.postgres import (
    PASSWORDS_FILE,
    PostgresError,
    PostgresServer,
    find_bindir,
)

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


def wait_until(condition, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("Uid:"):
                return int(line.split()[2])  # effective uid
    raise AssertionError(f"no Uid line for {pid}")


@pytest.fixture
def shared_dir() -> Iterator[str]:
    """A directory the unprivileged server user can reach (pytest's tmp_path is root-only)."""
    path = tempfile.mkdtemp(prefix="pss-launcher-test-", dir="/tmp")
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_find_bindir_returns_a_directory_with_postgres_and_initdb() -> None:
    bindir = find_bindir()
    assert os.access(os.path.join(bindir, "postgres"), os.X_OK)
    assert os.access(os.path.join(bindir, "initdb"), os.X_OK)


def test_server_accepts_connections_and_stop_leaves_no_process_or_directory() -> None:
    server = PostgresServer()
    server.start()
    try:
        cluster, temp_dir, port = server.cluster_name, server.temp_dir, server.port
        assert temp_dir is not None and os.path.isdir(temp_dir)
        password = server.password_for("postgres")
        assert server.superuser_dsn == f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
        with psycopg.connect(server.superuser_dsn) as conn:
            row = conn.execute(
                "SELECT current_user, current_setting('fsync'), current_setting('listen_addresses'),"
                " pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"
            ).fetchone()
        assert row == ("postgres", "off", "127.0.0.1", "UTF8")
        assert processes_with(cluster)
    finally:
        server.stop()
    assert processes_with(cluster) == []
    assert not os.path.exists(temp_dir)
    assert not port_open(port)
    server.stop()  # idempotent


ORDER_SQL = "SELECT x FROM (VALUES ('a'), ('B'), ('c')) v(x) ORDER BY x"


def test_default_locale_is_c_utf8_as_on_hosted_supabase() -> None:
    # Hosted Supabase databases have lc_collate = C.UTF-8 (supabase/postgres#696,
    # supabase/cli#1309): text sorts by code point, so 'B' < 'a'.
    with PostgresServer() as server, psycopg.connect(server.superuser_dsn) as conn:
        collate, ctype = conn.execute(
            "SELECT datcollate, datctype FROM pg_database WHERE datname = current_database()"
        ).fetchone() or ("", "")
        rows = conn.execute(ORDER_SQL).fetchall()
        upper = conn.execute("SELECT upper('é')").fetchone()
    assert collate.lower().replace("-", "") in ("c.utf8", "c")
    assert ctype.lower().replace("-", "") in ("c.utf8", "c")
    assert [r[0] for r in rows] == ["B", "a", "c"]
    if collate.lower().replace("-", "") == "c.utf8":
        assert upper == ("É",)  # a UTF-8 ctype, unlike plain C


def test_another_locale_can_be_chosen_and_orders_naturally() -> None:
    # An ICU collation needs no OS locale package, so the test runs on minimal systems.
    with PostgresServer(locale="icu:en-US") as server, psycopg.connect(server.superuser_dsn) as conn:
        rows = conn.execute(ORDER_SQL).fetchall()
    assert server.locale == "icu:en-US"
    assert [r[0] for r in rows] == ["a", "B", "c"]


def test_an_unknown_locale_is_refused_before_anything_is_created() -> None:
    server = PostgresServer(locale="xx_YY.UTF-8")
    with pytest.raises(PostgresError, match="not installed"):
        server.start()
    assert server.temp_dir is None
    assert not server.running


def test_connections_need_the_password_over_tcp_and_the_socket() -> None:
    no_passfile = {"passfile": os.devnull}
    with PostgresServer() as server:
        tcp = f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        sock = f"host={server.socket_dir} port={server.port} user=postgres dbname=postgres"
        for conninfo in (tcp, sock):
            with pytest.raises(psycopg.OperationalError, match="no password supplied"):
                psycopg.connect(conninfo, connect_timeout=5, **no_passfile)
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(conninfo, password="wrong", connect_timeout=5, **no_passfile)
            right = psycopg.connect(conninfo, password=server.password_for("postgres"), connect_timeout=5)
            right.close()
        with psycopg.connect(server.superuser_dsn) as conn:
            methods = {r[0] for r in conn.execute("SELECT auth_method FROM pg_hba_file_rules").fetchall()}
    assert methods == {"scram-sha-256"}


def test_passwords_are_random_per_cluster(shared_dir: str) -> None:
    with PostgresServer() as first, PostgresServer() as second, PostgresServer() as third:
        passwords = {s.password_for("postgres") for s in (first, second, third)}
        # The third start copies a template cluster; it still gets a password of its own.
        for server in (first, second, third):
            with psycopg.connect(server.superuser_dsn) as conn:
                conn.execute("SELECT 1")
    assert len(passwords) == 3


@pytest.mark.skipif(not IS_ROOT, reason="privilege drop only happens when running as root")
def test_server_runs_as_an_unprivileged_os_user_when_started_by_root() -> None:
    with PostgresServer() as server:
        assert server.postmaster_pid is not None
        assert server.os_user != "root"
        assert uid_of(server.postmaster_pid) != 0
        assert os.stat(os.path.join(server.data_dir, "PG_VERSION")).st_uid != 0
        # The supervisor stays root (it must be able to signal the server); everything else not.
        server_processes = [
            pid for pid in processes_with(server.cluster_name) if pid != server.supervisor_pid
        ]
        assert len(server_processes) > 1
        assert all(uid_of(pid) != 0 for pid in server_processes)


def test_given_data_dir_is_initialised_then_reused_and_never_deleted(shared_dir: str) -> None:
    data_dir = os.path.join(shared_dir, "cluster")
    with PostgresServer(data_dir=data_dir) as first:
        assert first.initialised_cluster
        with psycopg.connect(first.superuser_dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('survives a restart')")
    assert os.path.isfile(os.path.join(data_dir, "PG_VERSION"))
    with PostgresServer(data_dir=data_dir) as second:
        assert not second.initialised_cluster
        with psycopg.connect(second.superuser_dsn) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("survives a restart",)]
        cluster = second.cluster_name
    assert os.path.isfile(os.path.join(data_dir, "PG_VERSION"))
    assert processes_with(cluster) == []
    # The password that let the second server in is kept next to the cluster, owner-only.
    passwords = os.path.join(data_dir, PASSWORDS_FILE)
    assert os.stat(passwords).st_mode & 0o777 == 0o600
    assert os.stat(passwords).st_uid == os.geteuid()
    assert first.password_for("postgres") == second.password_for("postgres")


def test_reused_cluster_without_its_passwords_file_is_refused(shared_dir: str) -> None:
    data_dir = os.path.join(shared_dir, "cluster")
    with PostgresServer(data_dir=data_dir):
        pass
    os.unlink(os.path.join(data_dir, PASSWORDS_FILE))
    with pytest.raises(PostgresError, match="superuser password is unknown"):
        PostgresServer(data_dir=data_dir).start()


def test_non_empty_directory_without_a_cluster_is_refused(shared_dir: str) -> None:
    with open(os.path.join(shared_dir, "notes.txt"), "w") as fh:
        fh.write("not a cluster")
    with pytest.raises(PostgresError, match="not empty and holds no PostgreSQL cluster"):
        PostgresServer(data_dir=shared_dir).start()
    assert os.listdir(shared_dir) == ["notes.txt"]


def test_cluster_of_another_major_version_is_refused(shared_dir: str) -> None:
    with open(os.path.join(shared_dir, "PG_VERSION"), "w") as fh:
        fh.write("9\n")
    with pytest.raises(PostgresError, match="PostgreSQL 9 cluster"):
        PostgresServer(data_dir=shared_dir).start()


@pytest.mark.skipif(not IS_ROOT, reason="only root has to hand the data dir to another user")
def test_data_dir_the_server_user_cannot_reach_is_refused_with_advice() -> None:
    private = tempfile.mkdtemp(prefix="pss-private-", dir="/tmp")  # mode 0700, root-owned
    try:
        server = PostgresServer(data_dir=os.path.join(private, "cluster"))
        with pytest.raises(PostgresError, match="cannot reach") as info:
            server.start()
        assert "chmod o+x" in str(info.value)
        assert server.temp_dir is None
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_startup_failure_reports_the_server_log_and_cleans_up() -> None:
    server = PostgresServer(settings={"shared_buffers": "plenty"})
    with pytest.raises(PostgresError, match="shared_buffers") as info:
        server.start()
    assert "server log" in str(info.value)
    assert server.temp_dir is None
    assert not server.running


def test_taken_port_is_reported_and_another_server_there_is_not_mistaken_for_ours() -> None:
    with PostgresServer() as first:
        second = PostgresServer(port=first.port)
        with pytest.raises(PostgresError, match="address in use"):
            second.start()
        assert second.temp_dir is None
        with psycopg.connect(first.superuser_dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


_OWNER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from parlant_supabase_sync.local.postgres import PostgresServer
    server = PostgresServer()
    server.start()
    print(server.cluster_name, server.temp_dir, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_postgres_goes_away_when_the_owning_process_dies(sig: signal.Signals) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER_SCRIPT], stdout=subprocess.PIPE, text=True,
    )
    try:
        assert owner.stdout is not None
        cluster, temp_dir = owner.stdout.readline().split()
        assert processes_with(cluster)
        owner.send_signal(sig)
        owner.wait(20)
        assert wait_until(lambda: not processes_with(cluster)), processes_with(cluster)
        assert wait_until(lambda: not os.path.exists(temp_dir))
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_postgres_goes_away_when_its_supervisor_is_killed() -> None:
    server = PostgresServer()
    server.start()
    try:
        cluster = server.cluster_name
        assert server.supervisor_pid is not None
        os.kill(server.supervisor_pid, signal.SIGKILL)
        assert wait_until(lambda: not processes_with(cluster)), processes_with(cluster)
    finally:
        server.stop()
    assert server.temp_dir is None


_NON_ROOT_SCRIPT = textwrap.dedent(
    """
    import os, psycopg
    from parlant_supabase_sync.local.postgres import PostgresServer
    with PostgresServer() as server:
        with psycopg.connect(server.superuser_dsn) as conn:
            conn.execute("SELECT 1")
        print(os.geteuid(), server.os_user, server.temp_dir, flush=True)
    print(os.path.exists(server.temp_dir or "/nonexistent"))
    """
)


def _interpreter_for(user: str) -> str | None:
    """An interpreter of our minor version that `user` can run (ours may live under /root)."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (sys.executable, shutil.which(f"python{version}"), "/usr/bin/python3"):
        if not candidate:
            continue
        probe = subprocess.run(
            ["runuser", "-u", user, "--", candidate, "-c",
             "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


@pytest.mark.skipif(not IS_ROOT or shutil.which("runuser") is None,
                    reason="needs root (to become another user) and runuser")
def test_a_normal_user_runs_postgres_as_itself() -> None:
    python = _interpreter_for("postgres")
    if python is None:
        pytest.skip("no interpreter of this Python version that the postgres user can run")
    # Our packages may sit where the postgres user cannot read them (tox makes .tox 0700, a
    # venv may live under /root), so hand it a world-readable copy of just what the script uses.
    with tempfile.TemporaryDirectory() as copy_root:
        os.chmod(copy_root, 0o755)
        for name in ("parlant_supabase_sync", "psycopg", "psycopg_binary", "typing_extensions"):
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                continue
            source = spec.origin
            if os.path.basename(source) == "__init__.py":
                shutil.copytree(os.path.dirname(source), os.path.join(copy_root, name),
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, copy_root)
        subprocess.run(["chmod", "-R", "a+rX", copy_root], check=True)
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", "env", "HOME=/tmp", f"PYTHONPATH={copy_root}",
             "PYTHONDONTWRITEBYTECODE=1", python, "-c", _NON_ROOT_SCRIPT],
            capture_output=True, text=True, timeout=120, check=False, cwd="/tmp",
        )
    assert result.returncode == 0, result.stderr
    started, removed = result.stdout.splitlines()
    euid, os_user, _ = started.split()
    assert euid != "0" and os_user == "postgres"
    assert removed == "False"


def test_stop_does_not_wait_for_a_forked_child_that_inherited_the_watch_pipe() -> None:
    server = PostgresServer(stop_timeout=60)
    server.start()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only sleeps
        time.sleep(30)
        os._exit(0)
    try:
        started = time.monotonic()
        server.stop()
        elapsed = time.monotonic() - started
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    assert elapsed < 30  # far below the 60 s kill deadline it would otherwise wait for
    assert not server.running


_TEMPLATE_SCRIPT = textwrap.dedent(
    """
    import time
    from parlant_supabase_sync.local.postgres import PostgresServer, _templates
    for _ in range(3):
        with PostgresServer() as server:
            pass
    third = PostgresServer()
    third.start()
    print(*(path for path, _ in _templates._templates.values()), third.cluster_name, flush=True)
    time.sleep(600)
    """
)


def test_cluster_template_copies_work_and_vanish_with_the_process() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _TEMPLATE_SCRIPT], stdout=subprocess.PIPE, text=True,
    )
    try:
        assert owner.stdout is not None
        template, cluster = owner.stdout.readline().split()
        assert os.path.isfile(os.path.join(template, "PG_VERSION"))
        assert processes_with(cluster)
        owner.kill()
        owner.wait(20)
        template_root = os.path.dirname(template)
        assert wait_until(lambda: not os.path.exists(template_root))
        assert wait_until(lambda: not processes_with(cluster))
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_servers_started_from_the_template_are_independent_clusters() -> None:
    with PostgresServer() as first, PostgresServer() as second, PostgresServer() as third:
        for index, server in enumerate((first, second, third)):
            with psycopg.connect(server.superuser_dsn, autocommit=True) as conn:
                conn.execute(f"CREATE TABLE only_in_{index} ()")
        for index, server in enumerate((first, second, third)):
            with psycopg.connect(server.superuser_dsn) as conn:
                names = conn.execute(
                    "SELECT relname FROM pg_class WHERE relname LIKE 'only_in_%'"
                ).fetchall()
            assert names == [(f"only_in_{index}",)]
