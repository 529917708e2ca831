"""A missing extra is named in the error, with the command that installs it."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run_without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    # sys.modules[name] = None makes `import name` fail as if it were not installed.
    blocker = "".join(f"import sys; sys.modules[{m!r}] = None; " for m in modules)
    return subprocess.run(
        [sys.executable, "-c", blocker + code], capture_output=True, text=True, timeout=120, check=False
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
