"""Fixtures for the Parlant-level tests (real stores and a real Server over the adapter)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# Shared helpers live next to the facade tests (tests are not packages; imported by basename).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "facade"))

from facade_helpers import apply_schema, truncate_adapter_tables

from parlant_supabase_sync.settings import SupabaseSettings

if TYPE_CHECKING:
    from parlant_supabase_sync.local import LocalSupabase


@pytest.fixture
def anyio_backend() -> str:
    # Parlant's stores take aiorwlock locks, which need asyncio; the adapter itself is tested
    # on both backends in tests/facade (including Parlant's store start-up there).
    return "asyncio"


@pytest.fixture(scope="session")
def supabase_schema(local_supabase: LocalSupabase) -> LocalSupabase:
    apply_schema(local_supabase)
    return local_supabase


@pytest.fixture
def supabase(supabase_schema: LocalSupabase) -> Iterator[LocalSupabase]:
    """The stand-in with every adapter table emptied and the request log cleared."""
    truncate_adapter_tables(supabase_schema)
    supabase_schema.requests.clear()
    yield supabase_schema


@pytest.fixture
def settings(supabase: LocalSupabase) -> SupabaseSettings:
    return SupabaseSettings.from_env(supabase.env())
