"""A missing extra is named in the error, with the command that installs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run_without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    # sys.modules[name] = None makes `import name` fail as if it were not installed.
    blocker = "".join(f"import sys; sys.modules[{m!r}] = None; " for m in modules)
    # No project credentials: `demo` then needs the local stand-in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE_")}
    return subprocess.run(
        [sys.executable, "-c", blocker + code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


# What the console script runs (`__main__` calls the CLI), with argv set.
def _console(*argv: str) -> str:
    return (
        f"import runpy, sys; sys.argv = ['parlant-supabase-sync', *{list(argv)!r}]; "
        "runpy.run_module('parlant_supabase_sync', run_name='__main__')"
    )


def test_supabase_stores_without_parlant_names_the_parlant_extra() -> None:
    result = _run_without(["parlant"], "from parlant_supabase_sync import supabase_stores")
    assert result.returncode != 0
    assert "pip install 'parlant-supabase-sync[parlant]'" in result.stderr


@pytest.mark.parametrize("missing", ["psycopg", "jwt"])
def test_the_stand_in_without_the_local_extra_names_it(missing: str) -> None:
    result = _run_without(
        [missing], "from parlant_supabase_sync.local import LocalSupabase"
    )
    assert result.returncode != 0
    assert "pip install 'parlant-supabase-sync[local]'" in result.stderr


def test_the_core_works_without_parlant() -> None:
    result = _run_without(
        ["parlant"], "from parlant_supabase_sync import SyncDocumentDatabase, connect; print('ok')"
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_wiring_module_without_parlant_names_the_parlant_extra() -> None:
    result = _run_without(["parlant"], "import parlant_supabase_sync.wiring")
    assert result.returncode != 0
    assert "pip install 'parlant-supabase-sync[parlant]'" in result.stderr


def test_demo_without_the_local_extra_names_it() -> None:
    result = _run_without(["psycopg"], _console("demo"))
    assert result.returncode == 1
    assert "pip install 'parlant-supabase-sync[local]'" in result.stderr
    assert "Traceback" not in result.stderr and "ModuleNotFoundError" not in result.stderr


def test_demo_without_parlant_names_the_parlant_extra() -> None:
    result = _run_without(["parlant"], _console("demo"))
    assert result.returncode == 1
    assert "pip install 'parlant-supabase-sync[parlant]'" in result.stderr
    assert "Traceback" not in result.stderr
