"""Fixtures for the core tests: the real postgrest client against the local stand-in, and
Parlant's TransientDocumentDatabase as the oracle (helpers in core_helpers.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

pytest.importorskip("parlant")

from core_helpers import Doc, MakeDb, Oracle, Pair, identity, unique_prefix

from parlant_supabase_sync.core import SyncDocumentDatabase
from parlant_supabase_sync.ddl import generate_functions, generate_schema
from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.settings import SupabaseSettings


@pytest.fixture(scope="session")
def stand_in(local_supabase: LocalSupabase) -> LocalSupabase:
    local_supabase.execute_sql(generate_functions())
    return local_supabase


@pytest.fixture
def make_db(stand_in: LocalSupabase) -> Iterator[MakeDb]:
    """``make_db(collections=("docs",), prefix=None, key=None, **settings)``: fresh tables."""
    created: list[SyncDocumentDatabase] = []

    def make(
        collections: Sequence[str] = ("docs",),
        *,
        prefix: str | None = None,
        key: str | None = None,
        create_tables: bool = True,
        **settings: Any,
    ) -> SyncDocumentDatabase:
        prefix = prefix or unique_prefix()
        if create_tables:
            stand_in.execute_sql(generate_schema({prefix: tuple(collections)}))
        config = SupabaseSettings(
            **{
                "url": stand_in.url,
                "key": key or stand_in.secret_key,
                "retry": {"base_delay": 0.01, "max_delay": 0.05},
                **settings,
            }
        )
        db = SyncDocumentDatabase(
            config, table_prefix=prefix, logger=logging.getLogger("tests.core")
        )
        created.append(db)
        return db

    yield make
    for db in created:
        db.close()


@pytest.fixture
def max_rows(stand_in: LocalSupabase) -> Iterator[Callable[[int | None], None]]:
    """Change the stand-in's max-rows cap for one test (restored to 1000 afterwards)."""
    yield stand_in.set_max_rows
    stand_in.set_max_rows(1000)


@pytest.fixture
def pair(make_db: MakeDb) -> Pair:
    db = make_db(("docs",))
    return Pair(Oracle().collection("docs"), db.get_or_create_collection("docs", Doc, identity))
