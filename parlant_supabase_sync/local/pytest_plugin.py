"""pytest plugin: a local Supabase stand-in for tests (`local_supabase`, `local_supabase_env`).

Registered as the `parlant_supabase_sync` pytest11 entry point, so it loads in every pytest run
where the package is installed; everything heavy is imported inside the fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from parlant_supabase_sync.local.stack import LocalSupabase


@pytest.fixture(scope="session")
def local_supabase() -> Iterator[LocalSupabase]:
    """A started local Supabase stand-in (PostgreSQL + PostgREST-protocol gateway), one per session."""
    try:
        import psycopg  # noqa: F401  (imported lazily by the stack; fail here with advice)

        from parlant_supabase_sync.local.stack import LocalSupabase
    except ImportError as exc:
        raise RuntimeError(
            "the local_supabase fixture needs the `local` extra: "
            "pip install 'parlant-supabase-sync[local]'"
        ) from exc
    with LocalSupabase() as stack:
        yield stack


@pytest.fixture
def local_supabase_env(
    local_supabase: LocalSupabase, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """`local_supabase.env()` exported into `os.environ` for one test (restored afterwards)."""
    env = local_supabase.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
