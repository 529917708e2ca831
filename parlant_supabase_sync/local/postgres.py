"""Throw-away PostgreSQL servers for the local stand-in.

`PostgresServer` finds the server binaries, runs `initdb` (or reuses an existing cluster), starts
`postgres` on 127.0.0.1 and a free port, waits until it accepts connections and stops it again.

No orphans: `postgres` is started by a tiny supervisor process (its own session, so a terminal's
Ctrl-C reaches only us) that holds the read end of a pipe whose write end only this process
has. When this process goes away for any reason, including SIGKILL, the pipe closes and the
supervisor shuts PostgreSQL down and deletes the temporary directory. On Linux `postgres`
additionally gets `PR_SET_PDEATHSIG`, so it also goes when only the supervisor is killed.

`initdb` and the template copies (see `_TemplateCache`) run under the same kind of supervisor.
Shutdown is what `pg_ctl stop -m fast` does (SIGINT to the postmaster), then SIGKILL after
`stop_timeout` seconds.

PostgreSQL refuses to run as root; when we are root the server runs as the OS user `postgres`
(created as the system user `parlantpg` if missing).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import IO

from typing_extensions import Self

from .pgbin import PostgresError, _server_version, find_bindir
from .pgsetup import (
    _DATABASE,
    _SUPERUSER,
    DEFAULT_LOCALE,
    PASSWORDS_FILE,
    SERVER_SETTINGS,
    _child_env,
    _free_port,
    _locale_args,
    _make_temp_dir,
    _OsUser,
    _Passwords,
    _release_supervisor,
    _run_supervised,
    _searchable_by,
    _server_user,
    _spawn_supervisor,
    _tail,
    _TemplateKey,
    _templates,
    new_password,
)

__all__ = [
    "DEFAULT_LOCALE",
    "PASSWORDS_FILE",
    "SERVER_SETTINGS",
    "PostgresError",
    "PostgresServer",
    "find_bindir",
]


# --------------------------------------------------------------------------------------------
# server

_running: set[PostgresServer] = set()
_running_lock = threading.Lock()


@atexit.register
def _stop_all_at_exit() -> None:
    with _running_lock:
        servers = list(_running)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


class PostgresServer:
    """A PostgreSQL server for tests and demos; loopback only, password authentication.

    `data_dir=None` creates a temporary cluster that `stop()` deletes. A given `data_dir` is
    initialised if it is empty or missing, reused if it already holds a cluster, and never
    deleted. `port=0` picks a free port.

    Every connection, over TCP and over the Unix socket, needs a password (`scram-sha-256`; no
    `trust` line in pg_hba.conf), so no other local OS user can connect as the superuser. The
    superuser's password is random per cluster; `dsn()` and `superuser_dsn` carry it. For a
    given data dir the passwords are kept in `PASSWORDS_FILE` there (mode 0600) so the cluster
    can be reused. `locale` picks the cluster locale (see `_locale_args`): C.UTF-8 by default,
    as hosted Supabase has.
    """

    def __init__(
        self,
        data_dir: str | None = None,
        port: int = 0,
        *,
        bindir: str | None = None,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        locale: str = DEFAULT_LOCALE,
    ) -> None:
        self._locale = locale
        self._passwords = _Passwords()
        # A template copy starts with the template's superuser password; start() replaces it.
        self._rotate_to: str | None = None
        self._given_data_dir = os.path.abspath(data_dir) if data_dir is not None else None
        self._requested_port = port
        self._bindir = bindir
        self._settings = dict(SERVER_SETTINGS)
        self._settings.update(settings or {})
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._port: int | None = None
        self._temp_dir: str | None = None
        self._data_dir: str | None = None
        self._supervisor: subprocess.Popen[bytes] | None = None
        self._postmaster_pid: int | None = None
        self._user: _OsUser | None = None
        self._initialised = False
        self._lock = threading.Lock()

    # ---- properties

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        if self._port is None:
            raise PostgresError("the PostgreSQL server is not started; call start() first")
        return self._port

    @property
    def bindir(self) -> str:
        if self._bindir is None:
            self._bindir = find_bindir()
        return self._bindir

    @property
    def data_dir(self) -> str:
        if self._data_dir is None:
            raise PostgresError("the PostgreSQL server is not started; call start() first")
        return self._data_dir

    @property
    def socket_dir(self) -> str:
        if self._temp_dir is None:
            raise PostgresError("the PostgreSQL server is not started; call start() first")
        return os.path.join(self._temp_dir, "sock")

    @property
    def log_path(self) -> str:
        if self._temp_dir is None:
            raise PostgresError("the PostgreSQL server is not started; call start() first")
        return os.path.join(self._temp_dir, "server.log")

    @property
    def temp_dir(self) -> str | None:
        """The directory this server created (socket, log, temporary cluster); None before start."""
        return self._temp_dir

    @property
    def os_user(self) -> str:
        """The OS account the server processes run as."""
        if self._user is None:
            raise PostgresError("the PostgreSQL server is not started; call start() first")
        return self._user.name

    @property
    def postmaster_pid(self) -> int | None:
        return self._postmaster_pid

    @property
    def supervisor_pid(self) -> int | None:
        """The supervisor process (leader of the server's process group), while running."""
        return self._supervisor.pid if self._supervisor is not None else None

    @property
    def cluster_name(self) -> str:
        """Shown in every server process title (`postgres: <cluster_name>: …`)."""
        return f"parlant-supabase-{self.port}"

    @property
    def superuser(self) -> str:
        return _SUPERUSER

    @property
    def database(self) -> str:
        return _DATABASE

    @property
    def initialised_cluster(self) -> bool:
        """True if start() ran initdb, False if it reused an existing cluster."""
        return self._initialised

    @property
    def running(self) -> bool:
        return self._supervisor is not None and self._supervisor.poll() is None

    @property
    def locale(self) -> str:
        """The locale asked for (a reused cluster keeps the one it was created with)."""
        return self._locale

    @property
    def superuser_dsn(self) -> str:
        return self.dsn(_SUPERUSER)

    def password_for(self, role: str) -> str:
        """The password `dsn(role)` carries: the superuser's, or one created for `role` on first
        use (set it with `ALTER ROLE … PASSWORD`, as the bootstrap does for `authenticator`)."""
        return self._passwords.get(role)

    def dsn(self, user: str, database: str = _DATABASE) -> str:
        """libpq URL for `user` over TCP on 127.0.0.1, with its password."""
        return f"postgresql://{user}:{self.password_for(user)}@{self.host}:{self.port}/{database}"

    def __repr__(self) -> str:
        state = f"port={self._port}" if self.running else "stopped"
        return f"<PostgresServer {state} data_dir={self._data_dir!r}>"

    # ---- lifecycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Initialise (if needed) and start the server; returns once it accepts connections."""
        with self._lock:
            if self._supervisor is not None:
                raise PostgresError("this PostgresServer is already started")
            try:
                self._start()
            except BaseException:
                self._stop_locked()
                raise
        with _running_lock:
            _running.add(self)

    def stop(self) -> None:
        """Fast shutdown; kills what is left after `stop_timeout`; deletes what start() created."""
        with self._lock:
            self._stop_locked()
        with _running_lock:
            _running.discard(self)

    def _start(self) -> None:
        bindir = self.bindir
        version = _server_version(bindir)
        _locale_args(
            bindir, version, self._locale
        )  # an unknown locale fails before anything exists
        self._user = user = _server_user(self._given_data_dir)
        self._temp_dir = temp_dir = _make_temp_dir(user)
        os.mkdir(self.socket_dir, 0o700)
        open(self.log_path, "ab").close()
        if user.uid != os.geteuid():
            os.chown(self.socket_dir, user.uid, user.gid)
            os.chown(self.log_path, user.uid, user.gid)
        data_dir = self._given_data_dir or os.path.join(temp_dir, "data")
        self._data_dir = data_dir
        passwords_file = os.path.join(data_dir, PASSWORDS_FILE) if self._given_data_dir else None
        if os.path.exists(os.path.join(data_dir, "PG_VERSION")):
            self._check_reusable(data_dir, version)
            if passwords_file is None or not os.path.exists(passwords_file):
                raise PostgresError(
                    f"{data_dir} holds a cluster but no {PASSWORDS_FILE} (it was created by an "
                    "older version with trust authentication, or the file was deleted); its "
                    "superuser password is unknown: use a new data dir"
                )
        else:
            self._initdb(data_dir, user, bindir, version)
            self._initialised = True
        self._passwords.attach(passwords_file)
        attempts = 3 if self._requested_port == 0 else 1
        for attempt in range(attempts):
            self._port = self._requested_port or _free_port()
            try:
                self._launch(data_dir, user, bindir)
                self._wait_ready()
                self._rotate_superuser_password()
                return
            except _PortTaken:
                self._terminate_supervisor()
                if attempt == attempts - 1:
                    raise PostgresError(
                        f"PostgreSQL could not listen on 127.0.0.1:{self._port} (address in use); "
                        "choose another port or pass port=0"
                    ) from None

    def _rotate_superuser_password(self) -> None:
        """Give a cluster copied from a template its own superuser password."""
        new, self._rotate_to = self._rotate_to, None
        if new is None:
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.superuser_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(_SUPERUSER), sql.Literal(new)
                )
            )
        self._passwords.set(_SUPERUSER, new)

    def _check_reusable(self, data_dir: str, version: int) -> None:
        with open(os.path.join(data_dir, "PG_VERSION")) as fh:
            cluster_version = fh.read().strip()
        if cluster_version != str(version):
            raise PostgresError(
                f"{data_dir} holds a PostgreSQL {cluster_version} cluster but the server binaries "
                f"in {self.bindir} are version {version}; use another data dir or matching binaries"
            )

    def _initdb(self, data_dir: str, user: _OsUser, bindir: str, version: int) -> None:
        if os.path.exists(data_dir):
            if os.listdir(data_dir):
                raise PostgresError(
                    f"{data_dir} exists, is not empty and holds no PostgreSQL cluster (no "
                    "PG_VERSION); give an empty or missing directory, or an existing cluster"
                )
        else:
            os.makedirs(data_dir, 0o700)
        if user.uid != os.geteuid():
            os.chown(data_dir, user.uid, user.gid)
            if not _searchable_by(data_dir, user):
                raise PostgresError(
                    f"the OS user {user.name} that runs PostgreSQL cannot reach {data_dir} (a parent "
                    "directory is not searchable by it); choose a data dir under /tmp or make its "
                    "parents world-searchable (chmod o+x)"
                )
        temp_dir = self._temp_dir or "/"
        key: _TemplateKey = (bindir, user.uid, user.gid, self._locale)
        if self._copy_template(key, data_dir, user, temp_dir):
            return
        password = new_password()
        # initdb reads the superuser password from a file the server user can read; it is
        # removed as soon as initdb has finished.
        pwfile = os.path.join(temp_dir, "pwfile")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
        if user.uid != os.geteuid():
            os.chown(pwfile, user.uid, user.gid)
        try:
            self._run_initdb(key, data_dir, user, bindir, version, pwfile, password)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(pwfile)
        self._passwords.set(_SUPERUSER, password)

    def _copy_template(
        self, key: _TemplateKey, data_dir: str, user: _OsUser, temp_dir: str
    ) -> bool:
        template = _templates.template_for(key)
        if template is None:
            return False
        path, template_password = template
        log = os.path.join(temp_dir, "copy.log")
        copied = _run_supervised(
            ["cp", "-a", path + "/.", data_dir],
            user,
            log=log,
            cwd=temp_dir,
            remove=[temp_dir],
        )
        if copied == 0:
            self._passwords.set(_SUPERUSER, template_password)
            self._rotate_to = new_password()
            return True
        _templates.forget(key)
        for entry in os.listdir(data_dir):
            shutil.rmtree(os.path.join(data_dir, entry), ignore_errors=True)
        return False

    def _run_initdb(
        self,
        key: _TemplateKey,
        data_dir: str,
        user: _OsUser,
        bindir: str,
        version: int,
        pwfile: str,
        password: str,
    ) -> None:
        temp_dir = self._temp_dir or "/"
        failures: list[str] = []
        for locale_args in _locale_args(bindir, version, self._locale):
            argv = [
                os.path.join(bindir, "initdb"),
                "-D",
                data_dir,
                "-U",
                _SUPERUSER,
                "-E",
                "UTF8",
                # scram-sha-256 for `local` and `host` lines alike: no trust anywhere.
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--no-sync",
                "--no-instructions",
                *locale_args,
            ]
            log = os.path.join(temp_dir, "initdb.log")
            returncode = _run_supervised(argv, user, log=log, cwd=temp_dir, remove=[temp_dir])
            if returncode == 0:
                _templates.initdb_ran(key, data_dir, user, password)
                return
            failures.append(f"{' '.join(locale_args)}: {_tail(log, 12)}")
            os.unlink(log)
            # initdb removes what it created on failure, but leaves a pre-existing dir's contents.
            for entry in os.listdir(data_dir):
                shutil.rmtree(os.path.join(data_dir, entry), ignore_errors=True)
        raise PostgresError("initdb failed for every locale tried:\n" + "\n".join(failures))

    def _launch(self, data_dir: str, user: _OsUser, bindir: str) -> None:
        settings = dict(self._settings)
        settings["port"] = str(self._port)
        settings["unix_socket_directories"] = self.socket_dir
        settings["cluster_name"] = self.cluster_name
        argv = [os.path.join(bindir, "postgres"), "-D", data_dir]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        self._supervisor = _spawn_supervisor(
            argv,
            user,
            log=self.log_path,
            cwd=self._temp_dir,
            env=_child_env(),
            stop_signal=signal.SIGINT,
            kill_after=self._stop_timeout,
            # Deleted by the supervisor if we go away first (e.g. SIGKILL). Never a user-given
            # data dir: that one lives outside our temp dir.
            remove=[self._temp_dir] if self._temp_dir else [],
        )
        assert self._supervisor.stdout is not None
        line = self._read_line(self._supervisor.stdout, timeout=30.0)
        if not line.strip().isdigit():
            raise PostgresError(
                "the PostgreSQL supervisor did not start postgres; server log:\n"
                + _tail(self.log_path)
            )
        self._postmaster_pid = int(line)

    @staticmethod
    def _read_line(stream: IO[bytes], timeout: float) -> str:
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        return result[0].decode() if result else ""

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + self._startup_timeout
        last_error = ""
        while True:
            supervisor = self._supervisor
            if supervisor is None or supervisor.poll() is not None:
                log = _tail(self.log_path)
                if "Address already in use" in log or "could not bind" in log:
                    raise _PortTaken()
                raise PostgresError(
                    f"PostgreSQL exited during startup; server log ({self.log_path}):\n{log}"
                )
            try:
                with psycopg.connect(
                    self.superuser_dsn, connect_timeout=2, autocommit=True
                ) as conn:
                    row = conn.execute("SELECT current_setting('data_directory')").fetchone()
                # Until our postmaster has bound the port, another server may answer on it.
                if row is not None and os.path.realpath(row[0]) == os.path.realpath(self.data_dir):
                    return
                last_error = "another PostgreSQL server answered on this port"
            except psycopg.OperationalError as exc:
                last_error = str(exc).strip()
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"PostgreSQL did not accept connections on 127.0.0.1:{self._port} within "
                    f"{self._startup_timeout:.0f} s (last error: {last_error}); server log:\n"
                    + _tail(self.log_path)
                )
            time.sleep(0.05)

    def _terminate_supervisor(self) -> None:
        supervisor = self._supervisor
        if supervisor is None:
            return
        _release_supervisor(supervisor, self._stop_timeout)
        self._supervisor = None
        postmaster, self._postmaster_pid = self._postmaster_pid, None
        # A supervisor that exited normally has reaped postgres (and its pid may be reused).
        if postmaster is not None and (supervisor.returncode or 0) < 0:
            # Normally gone already; not if the supervisor itself was killed (then PDEATHSIG
            # has asked postgres for a fast shutdown, which we wait for).
            deadline = time.monotonic() + self._stop_timeout
            while _alive(postmaster) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(postmaster):
                with contextlib.suppress(OSError):
                    os.kill(postmaster, 9)

    def _stop_locked(self) -> None:
        self._terminate_supervisor()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (reaped later by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class _PortTaken(Exception):
    pass
