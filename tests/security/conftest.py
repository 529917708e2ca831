"""Fixtures for the security suite: its own stand-in, the adapter's SQL installed per mode."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("psycopg")

if TYPE_CHECKING:
    from parlant_supabase_sync.local.stack import LocalSupabase


@pytest.fixture(scope="session")
def security_stack() -> Iterator[LocalSupabase]:
    """A stand-in of its own (each test installs the SQL it needs; nothing else shares it)."""
    from parlant_supabase_sync.local import LocalSupabase

    with LocalSupabase() as stack:
        yield stack
