"""The metadata cache in use: request counts on the local stand-in around real store starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from facade_helpers import RecordingLogger
from parlant.core.persistence.common import MigrationRequired
from parlant.core.persistence.document_database import identity_loader_for
from parlant.core.persistence.document_database_helper import MetadataDocument
from parlant.core.sessions import SessionDocumentStore

from parlant_supabase_sync.cache import MetadataCache
from parlant_supabase_sync.facade import SupabaseDocumentDatabase
from parlant_supabase_sync.settings import SupabaseSettings

if TYPE_CHECKING:
    from parlant_supabase_sync.local import LocalSupabase

pytestmark = pytest.mark.anyio

PREFIX = "parlant_sessions_"
METADATA_TABLE = "parlant_sessions_metadata"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def metadata_reads(supabase: LocalSupabase) -> int:
    return supabase.requests.count(method="GET", path_contains=METADATA_TABLE)


async def start_session_store(settings: SupabaseSettings, cache: MetadataCache) -> None:
    async with (
        SupabaseDocumentDatabase(
            RecordingLogger(), PREFIX, settings, metadata_cache=cache
        ) as db,
        SessionDocumentStore(db, allow_migration=False),
    ):
        pass


async def test_second_store_start_within_ttl_reads_no_metadata(
    supabase: LocalSupabase, settings: SupabaseSettings
) -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    await start_session_store(settings, cache)
    assert metadata_reads(supabase) >= 1
    supabase.requests.clear()
    await start_session_store(settings, cache)
    assert metadata_reads(supabase) == 0
    assert cache.hits >= 1


async def test_store_start_after_ttl_reads_the_server_again(
    supabase: LocalSupabase, settings: SupabaseSettings
) -> None:
    clock = FakeClock()
    cache = MetadataCache(ttl=30, timer=clock)
    await start_session_store(settings, cache)
    clock.now += 30.5
    supabase.requests.clear()
    await start_session_store(settings, cache)
    assert metadata_reads(supabase) >= 1


async def test_zero_ttl_reads_metadata_on_every_start(
    supabase: LocalSupabase, settings: SupabaseSettings
) -> None:
    cache = MetadataCache(ttl=0)
    await start_session_store(settings, cache)
    first = metadata_reads(supabase)
    supabase.requests.clear()
    await start_session_store(settings, cache)
    assert metadata_reads(supabase) == first >= 1
    assert cache.hits == 0


async def test_metadata_write_is_visible_to_the_next_read_and_the_next_store_start(
    supabase: LocalSupabase, settings: SupabaseSettings
) -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    await start_session_store(settings, cache)
    async with SupabaseDocumentDatabase(
        RecordingLogger(), PREFIX, settings, metadata_cache=cache
    ) as db:
        metadata = await db.get_or_create_collection(
            "metadata", MetadataDocument, identity_loader_for(MetadataDocument)
        )
        current = await metadata.find_one({})
        assert current is not None
        await metadata.update_one({"id": {"$eq": current["id"]}}, {"version": "0.1.0"})  # type: ignore[typeddict-item]
        reread = await metadata.find_one({})
        assert reread is not None and reread["version"] == "0.1.0"
    # The store now sees an older version than its own within the TTL: the cache was not stale.
    with pytest.raises(MigrationRequired):
        await start_session_store(settings, cache)


async def test_namespaces_do_not_share_cached_metadata(
    supabase: LocalSupabase, settings: SupabaseSettings
) -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    await start_session_store(settings, cache)
    supabase.requests.clear()
    async with SupabaseDocumentDatabase(
        RecordingLogger(), "parlant_customers_", settings, metadata_cache=cache
    ) as db:
        metadata = await db.get_or_create_collection(
            "metadata", MetadataDocument, identity_loader_for(MetadataDocument)
        )
        assert await metadata.find({}) is not None
    assert (
        supabase.requests.count(
            method="GET", path_contains="parlant_customers_metadata"
        )
        >= 1
    )
