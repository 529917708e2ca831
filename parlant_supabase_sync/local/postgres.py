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
import functools
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO

from typing_extensions import Self

__all__ = [
    "DEFAULT_LOCALE",
    "PASSWORDS_FILE",
    "SERVER_SETTINGS",
    "PostgresError",
    "PostgresServer",
    "find_bindir",
]

#: Settings the server starts with: durability is traded for speed (tests and demos only).
SERVER_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "listen_addresses": "127.0.0.1",
    "logging_collector": "off",
    "log_min_messages": "warning",
}

_FALLBACK_OS_USER = "parlantpg"
_PREFERRED_OS_USER = "postgres"
_SUPERUSER = "postgres"
_DATABASE = "postgres"
_TEMP_PREFIX = "parlant-supabase-pg-"
# Unix socket paths are limited to 107 bytes on Linux (103 on macOS).
_MAX_SOCKET_PATH = 100
#: Name of the file (mode 0600, inside a given data dir) that keeps the role passwords.
PASSWORDS_FILE = "parlant-supabase-passwords.json"


class PostgresError(RuntimeError):
    """PostgreSQL could not be found, initialised, started or stopped."""


# --------------------------------------------------------------------------------------------
# binaries


def _bindir_candidates() -> list[str]:
    candidates: list[str] = []
    env_dir = os.environ.get("PARLANT_SUPABASE_PG_BINDIR")
    if env_dir:
        candidates.append(env_dir)
    for name in ("postgres", "initdb"):
        found = shutil.which(name)
        if found:
            candidates.append(os.path.dirname(os.path.realpath(found)))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(out)
    patterns = (
        "/usr/lib/postgresql/*/bin",
        "/usr/pgsql-*/bin",
        "/opt/homebrew/opt/postgresql@*/bin",
        "/usr/local/opt/postgresql@*/bin",
        "/Applications/Postgres.app/Contents/Versions/*/bin",
    )
    versioned: list[tuple[tuple[int, ...], str]] = []
    for pattern in patterns:
        for path in glob.glob(pattern):
            numbers = tuple(int(n) for n in re.findall(r"\d+", path.rsplit("/bin", 1)[0])[-2:])
            versioned.append((numbers, path))
    candidates.extend(path for _, path in sorted(versioned, reverse=True))
    return candidates


def find_bindir() -> str:
    """The directory holding `postgres` and `initdb` (PATH, `pg_config`, then known install dirs).

    `PARLANT_SUPABASE_PG_BINDIR` overrides the search.
    """
    seen: set[str] = set()
    for candidate in _bindir_candidates():
        if candidate in seen:
            continue
        seen.add(candidate)
        if all(os.access(os.path.join(candidate, exe), os.X_OK) for exe in ("postgres", "initdb")):
            return candidate
    raise PostgresError(
        "PostgreSQL server binaries (postgres, initdb) not found on PATH, via pg_config or in "
        "/usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: `apt-get install postgresql`, "
        "macOS: `brew install postgresql@16`) or set PARLANT_SUPABASE_PG_BINDIR to their directory."
    )


def _server_version(bindir: str) -> int:
    out = subprocess.run(
        [os.path.join(bindir, "postgres"), "--version"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if match is None:
        raise PostgresError(f"cannot parse the output of `postgres --version`: {out.strip()!r}")
    return int(match.group(1))


# --------------------------------------------------------------------------------------------
# OS user, directories, locale


@dataclass(frozen=True)
class _OsUser:
    name: str
    uid: int
    gid: int


def _current_user() -> _OsUser:
    import pwd

    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return _OsUser(name, uid, os.getegid())


def _server_user(data_dir: str | None) -> _OsUser:
    """Who runs the server: ourselves, or when root an unprivileged account."""
    import pwd

    if os.geteuid() != 0:
        return _current_user()
    # A reused cluster keeps running as whoever initialised it.
    if data_dir is not None:
        with contextlib.suppress(OSError):
            st = os.stat(os.path.join(data_dir, "PG_VERSION"))
            if st.st_uid != 0:
                entry = pwd.getpwuid(st.st_uid)
                return _OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    for name in (_PREFERRED_OS_USER, _FALLBACK_OS_USER):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return _OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    useradd = shutil.which("useradd")
    if useradd is None:
        raise PostgresError(
            "running as root, but PostgreSQL refuses to run as root and there is no `postgres` "
            f"OS user nor `useradd` to create `{_FALLBACK_OS_USER}`; run as a normal user or "
            "create a `postgres` user"
        )
    result = subprocess.run(
        [useradd, "--system", "--no-create-home", "--user-group", "--shell",
         "/usr/sbin/nologin", _FALLBACK_OS_USER],
        capture_output=True, text=True, timeout=60, check=False,
    )
    # Exit code 9: created concurrently by someone else.
    if result.returncode not in (0, 9):
        raise PostgresError(
            f"could not create the system user {_FALLBACK_OS_USER} to run PostgreSQL as "
            f"(useradd exit {result.returncode}: {result.stderr.strip()}); create a `postgres` "
            "OS user or run as a normal user"
        )
    entry = pwd.getpwnam(_FALLBACK_OS_USER)
    return _OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _searchable_by(path: str, user: _OsUser) -> bool:
    """Whether `user` may traverse every ancestor directory of `path`."""
    if user.uid == 0 or user.uid == os.geteuid():
        return True
    current = os.path.dirname(os.path.abspath(path))
    while True:
        try:
            st = os.stat(current)
        except OSError:
            return False
        if st.st_uid == user.uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid == user.gid:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            return False
        parent = os.path.dirname(current)
        if parent == current:
            return True
        current = parent


def _make_temp_dir(user: _OsUser, prefix: str = _TEMP_PREFIX) -> str:
    base = tempfile.gettempdir()
    probe = os.path.join(base, prefix + "x" * 8, "sock", ".s.PGSQL.65535")
    if len(probe) > _MAX_SOCKET_PATH or not _searchable_by(probe, user):
        base = "/tmp"
    path = tempfile.mkdtemp(prefix=prefix, dir=base)
    if user.uid != os.geteuid():
        os.chown(path, user.uid, user.gid)
    return path


@functools.lru_cache(maxsize=1)
def _available_locales() -> frozenset[str]:
    locale_bin = shutil.which("locale")
    if locale_bin is None:
        return frozenset()
    try:
        out = subprocess.run(
            [locale_bin, "-a"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(line.strip() for line in out.splitlines() if line.strip())


#: The default cluster locale: hosted Supabase databases have `lc_collate = C.UTF-8`
#: (supabase/postgres#696, supabase/cli#1309), which sorts by code point ('B' < 'a').
DEFAULT_LOCALE = "C.UTF-8"


def _normalise_locale(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def _locale_args(bindir: str, version: int, locale: str = DEFAULT_LOCALE) -> list[list[str]]:
    """initdb locale options to try in order for `locale`.

    `locale` is a libc locale (`C.UTF-8`, `en_US.UTF-8`, as `locale -a` lists it in any
    spelling) or, on PostgreSQL 15+, `icu:<tag>` (e.g. `icu:en-US`) for an ICU collation with a
    C.UTF-8 ctype. The default, C.UTF-8, falls back to plain `C` (the same code-point order)
    where the system has no C.UTF-8; any other locale that is missing is an error, so a test
    that asked for a natural-language collation never silently runs with another.
    """
    available = {_normalise_locale(name): name for name in _available_locales()}
    utf8_c = available.get(_normalise_locale("C.UTF-8"))
    if locale.startswith("icu:"):
        if version < 15 or utf8_c is None:
            raise PostgresError(
                f"locale {locale!r} needs PostgreSQL 15+ and a C.UTF-8 system locale "
                f"(server version {version}, C.UTF-8 {'present' if utf8_c else 'missing'})"
            )
        return [["--locale-provider=icu", f"--icu-locale={locale[4:]}", f"--locale={utf8_c}"]]
    wanted = _normalise_locale(locale)
    if wanted == _normalise_locale(DEFAULT_LOCALE):
        return ([[f"--locale={utf8_c}"]] if utf8_c else []) + [["--locale=C"]]
    if wanted in ("c", "posix"):
        return [[f"--locale={locale}"]]
    found = available.get(wanted)
    if found is None:
        raise PostgresError(
            f"locale {locale!r} is not installed on this system (`locale -a` does not list it); "
            "install it (Debian: `locales` package, `localedef -i en_US -f UTF-8 en_US.UTF-8`) "
            "or use an ICU locale such as 'icu:en-US'"
        )
    return [[f"--locale={found}"]]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: str, lines: int = 25) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


# --------------------------------------------------------------------------------------------
# supervisor

# The supervisor is `supervisor.py`, run by path (not imported, not `-m`): it needs nothing but
# the standard library, so it works whatever sys.path the parent had.
_SUPERVISOR_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "supervisor.py")


def _spawn_supervisor(
    argv: Sequence[str] | None,
    user: _OsUser,
    *,
    log: str | None,
    cwd: str | None,
    env: Mapping[str, str],
    stop_signal: int,
    kill_after: float,
    remove: Sequence[str],
) -> subprocess.Popen[bytes]:
    """Start the supervisor for `argv` (None: no command, only delete `remove` when we exit)."""
    if log is not None and not os.path.exists(log):
        open(log, "ab").close()
    config = {
        "argv": list(argv) if argv is not None else None,
        "uid": user.uid if user.uid != os.geteuid() else None,
        "gid": user.gid,
        "log": log,
        "cwd": cwd,
        "env": dict(env),
        "stop_signal": int(stop_signal),
        "kill_after": kill_after,
        "remove": list(remove),
    }
    return subprocess.Popen(
        [sys.executable, "-I", _SUPERVISOR_SCRIPT, json.dumps(config)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
        start_new_session=True, close_fds=True, cwd=cwd or "/",
    )


def _release_supervisor(supervisor: subprocess.Popen[bytes], timeout: float) -> None:
    """Close our pipe ends (asks it to stop its command) and wait for it; if even its own
    deadline passes, kill its process group (it is the leader, so the group id cannot have
    been reused while it is unreaped)."""
    for stream in (supervisor.stdin, supervisor.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    # A forked child of ours may still hold the pipe open, so EOF alone is not enough.
    with contextlib.suppress(OSError):
        supervisor.send_signal(signal.SIGTERM)
    try:
        supervisor.wait(timeout + 5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(supervisor.pid, signal.SIGKILL)
        supervisor.wait()


def _child_env() -> dict[str, str]:
    # A minimal environment: the caller's PG* variables (PGDATA, PGPORT…) must not leak in.
    utf8 = [n for n in _available_locales() if n.lower().replace("-", "") == "c.utf8"]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": utf8[0] if utf8 else "C",
        "TZ": "UTC",
    }


def _run_supervised(
    argv: Sequence[str], user: _OsUser, *, log: str, cwd: str, remove: Sequence[str],
    timeout: float = 300.0,
) -> int:
    """Run `argv` to completion as `user` under a supervisor (killed with us); its exit code."""
    supervisor = _spawn_supervisor(
        argv, user, log=log, cwd=cwd, env=_child_env(), stop_signal=signal.SIGTERM,
        kill_after=10.0, remove=remove,
    )
    try:
        return supervisor.wait(timeout)
    except subprocess.TimeoutExpired:
        raise PostgresError(
            f"{os.path.basename(argv[0])} did not finish within {timeout:.0f} s; its log:\n"
            + _tail(log)
        ) from None
    finally:
        _release_supervisor(supervisor, 10.0)


# (bindir, uid, gid, locale)
_TemplateKey = tuple[str, int, int, str]


class _TemplateCache:
    """Freshly initialised clusters to copy instead of running initdb again.

    Per process, and only from the second initdb with the same binaries and OS user on, so a
    single start (the usual case) pays nothing. Copying takes a fraction of initdb's time,
    which adds up in test suites that start many servers. A supervisor without a command
    deletes the templates when this process ends, however it ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._initdb_runs: dict[_TemplateKey, int] = {}
        # template path and the superuser password the template cluster was created with
        self._templates: dict[_TemplateKey, tuple[str, str]] = {}
        self._roots: list[tuple[str, subprocess.Popen[bytes]]] = []

    def template_for(self, key: _TemplateKey) -> tuple[str, str] | None:
        with self._lock:
            return self._templates.get(key)

    def forget(self, key: _TemplateKey) -> None:
        with self._lock:
            self._templates.pop(key, None)

    def initdb_ran(self, key: _TemplateKey, data_dir: str, user: _OsUser, password: str) -> None:
        """Called after a successful initdb into `data_dir` (before the server starts)."""
        with self._lock:
            runs = self._initdb_runs[key] = self._initdb_runs.get(key, 0) + 1
            if runs != 2 or key in self._templates:
                return
        root = _make_temp_dir(user, prefix="parlant-supabase-template-")
        janitor = _spawn_supervisor(
            None, user, log=None, cwd=None, env=_child_env(), stop_signal=signal.SIGTERM,
            kill_after=10.0, remove=[root],
        )
        template = os.path.join(root, "cluster")
        log = os.path.join(root, "copy.log")
        returncode = _run_supervised(
            ["cp", "-a", data_dir, template], user, log=log, cwd=root, remove=[],
        )
        with self._lock:
            self._roots.append((root, janitor))
            if returncode == 0:
                self._templates[key] = (template, password)

    def close(self) -> None:
        with self._lock:
            roots, self._roots = self._roots, []
            self._templates.clear()
        for root, janitor in roots:
            _release_supervisor(janitor, 10.0)
            shutil.rmtree(root, ignore_errors=True)


_templates = _TemplateCache()
atexit.register(_templates.close)


# --------------------------------------------------------------------------------------------
# passwords


def new_password() -> str:
    """A fresh random role password (32 URL-safe characters: no DSN escaping needed)."""
    return secrets.token_urlsafe(24)


class _Passwords:
    """Role passwords of one cluster; for a given data dir also kept in `PASSWORDS_FILE` (0600).

    The file belongs to whoever runs the launcher (root, when the server runs as `postgres`),
    so the server's OS user cannot read it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}
        self._path: str | None = None

    def attach(self, path: str | None) -> None:
        """Keep the passwords in `path` from now on: load it if it exists, else write it."""
        with self._lock:
            self._path = path
            if path is not None and not os.path.exists(path):
                self._save_locked()
            elif path is not None:
                with open(path) as fh:
                    try:
                        stored = json.load(fh)
                    except json.JSONDecodeError:
                        stored = None
                if not isinstance(stored, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in stored.items()
                ):
                    raise PostgresError(f"{path} is not a passwords file; the cluster cannot be reused")
                self._values.update(stored)

    def known(self, role: str) -> bool:
        with self._lock:
            return role in self._values

    def get(self, role: str) -> str:
        """The password of `role`, created (and saved) on first use."""
        with self._lock:
            value = self._values.get(role)
            if value is None:
                value = self._values[role] = new_password()
                self._save_locked()
            return value

    def set(self, role: str, value: str) -> None:
        with self._lock:
            self._values[role] = value
            self._save_locked()

    def _save_locked(self) -> None:
        path = self._path
        if path is None or not os.path.isdir(os.path.dirname(path)):
            return
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self._values, fh)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


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
        _locale_args(bindir, version, self._locale)  # an unknown locale fails before anything exists
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
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(_SUPERUSER), sql.Literal(new)))
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

    def _copy_template(self, key: _TemplateKey, data_dir: str, user: _OsUser, temp_dir: str) -> bool:
        template = _templates.template_for(key)
        if template is None:
            return False
        path, template_password = template
        log = os.path.join(temp_dir, "copy.log")
        copied = _run_supervised(
            ["cp", "-a", path + "/.", data_dir], user, log=log, cwd=temp_dir, remove=[temp_dir],
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
        self, key: _TemplateKey, data_dir: str, user: _OsUser, bindir: str, version: int,
        pwfile: str, password: str,
    ) -> None:
        temp_dir = self._temp_dir or "/"
        failures: list[str] = []
        for locale_args in _locale_args(bindir, version, self._locale):
            argv = [
                os.path.join(bindir, "initdb"), "-D", data_dir, "-U", _SUPERUSER, "-E", "UTF8",
                # scram-sha-256 for `local` and `host` lines alike: no trust anywhere.
                "--auth=scram-sha-256", f"--pwfile={pwfile}",
                "--no-sync", "--no-instructions", *locale_args,
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
        raise PostgresError(
            "initdb failed for every locale tried:\n" + "\n".join(failures)
        )

    def _launch(self, data_dir: str, user: _OsUser, bindir: str) -> None:
        settings = dict(self._settings)
        settings["port"] = str(self._port)
        settings["unix_socket_directories"] = self.socket_dir
        settings["cluster_name"] = self.cluster_name
        argv = [os.path.join(bindir, "postgres"), "-D", data_dir]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        self._supervisor = _spawn_supervisor(
            argv, user, log=self.log_path, cwd=self._temp_dir, env=_child_env(),
            stop_signal=signal.SIGINT, kill_after=self._stop_timeout,
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
                with psycopg.connect(self.superuser_dsn, connect_timeout=2, autocommit=True) as conn:
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
