"""Fixtures for the async facade: both anyio backends, settings for the local stand-in, tables."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from facade_helpers import BACKENDS, apply_schema, truncate_adapter_tables

from parlant_supabase_sync.settings import SupabaseSettings

if TYPE_CHECKING:
    from parlant_supabase_sync.local import LocalSupabase


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


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
    return SupabaseSettings.from_env(supabase.env(), max_workers=4)
