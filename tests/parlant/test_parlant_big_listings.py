"""Parlant's tag listings over thousands of items, through the stand-in's 8 KiB request-line
limit (as Supabase's gateway enforces): the same answers as on Parlant's Transient database.

Parlant lists untagged items with ``$and`` of ``$ne`` over every tagged id and tagged items
with ``$or`` of ``$eq``: with 2,000 tagged items those filters are far beyond any URL limit.
The documents are written by Parlant's own stores on Transient, copied as they are into the
adapter's tables, then listed through Parlant's stores on both databases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from parlant.adapters.db.transient import TransientDocumentDatabase
from parlant.core.common import IdGenerator
from parlant.core.context_variables import ContextVariableDocumentStore
from parlant.core.customers import CustomerDocumentStore
from parlant.core.persistence.document_database import BaseDocument, identity_loader
from parlant.core.tags import TagId

from parlant_supabase_sync.api import connect
from parlant_supabase_sync.wiring import SupabaseStores, supabase_stores

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from parlant_supabase_sync.local import LocalSupabase
    from parlant_supabase_sync.settings import SupabaseSettings

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.scale]

ITEMS = 3000
T1, T2 = TagId("t1"), TagId("t2")


def _tags(i: int) -> list[TagId]:
    # 2,000 tagged: 1,200 with t1, 800 with t2; 1,000 untagged.
    return [T1] if i < 1200 else [T2] if i < 2000 else []


async def _copy(transient: TransientDocumentDatabase, settings: SupabaseSettings, store: str,
                collections: tuple[str, ...]) -> None:
    with connect(settings.url, settings.key.get_secret_value()) as db:
        for name in collections:
            source = await transient.get_collection(name, BaseDocument, identity_loader)
            documents = (await source.find({})).items
            db.store(store).collection(name).insert_many(documents)


@pytest.fixture
async def pair(
    settings: SupabaseSettings, supabase: LocalSupabase
) -> AsyncIterator[tuple[Any, Any, SupabaseStores]]:
    assert supabase.url  # the stand-in enforces 8 KiB request lines by default
    # One database per store, as on Supabase (each store keeps its own metadata).
    customer_db, variable_db = TransientDocumentDatabase(), TransientDocumentDatabase()
    ids = IdGenerator()
    async with CustomerDocumentStore(ids, customer_db) as customers, ContextVariableDocumentStore(
        ids, variable_db
    ) as variables:
        for i in range(ITEMS):
            await customers.create_customer(f"c{i:05d}", tags=_tags(i))
            await variables.create_variable(f"v{i:05d}", tags=_tags(i))
        await _copy(customer_db, settings, "customers", ("customers", "customer_tag_associations"))
        await _copy(
            variable_db, settings, "context_variables", ("variables", "variable_tag_associations")
        )
        async with supabase_stores(settings) as stores:
            yield customers, variables, stores


def _ids(listing: Any) -> list[str]:
    return [item.id for item in listing]


async def test_tag_listings_over_3000_items_equal_transients(
    pair: tuple[Any, Any, SupabaseStores], supabase: LocalSupabase
) -> None:
    # One test: building the 3,000 items on Transient and listing there is most of the cost.
    transient, transient_variables, stores = pair
    for tags in (None, [], [T1], [T2], [T1, T2]):
        expected = await transient.list_customers(tags=tags)
        supabase.requests.clear()
        actual = await stores.customers.list_customers(tags=tags)
        assert _ids(actual.items) == _ids(expected.items), tags
        assert (actual.total_count, actual.has_more) == (expected.total_count, expected.has_more)
        assert all(entry.status != 414 for entry in supabase.requests.entries())
    # Paged with a cursor over the untagged listing ($and of 2,000 $ne). Parlant asks for
    # limit - 1 on a first page and for everything after a cursor.
    cursor_a = cursor_b = None
    for _ in range(2):
        page_a = await transient.list_customers(tags=[], limit=400, cursor=cursor_a)
        page_b = await stores.customers.list_customers(tags=[], limit=400, cursor=cursor_b)
        assert _ids(page_b.items) == _ids(page_a.items)
        assert (page_b.total_count, page_b.has_more) == (page_a.total_count, page_a.has_more)
        assert page_b.next_cursor == page_a.next_cursor
        cursor_a, cursor_b = page_a.next_cursor, page_b.next_cursor
        if cursor_a is None:
            break
    for tags in (None, [], [T1]):
        expected = await transient_variables.list_variables(tags=tags)
        actual = await stores.variables.list_variables(tags=tags)
        assert sorted(_ids(actual)) == sorted(_ids(expected)), tags
        assert len(actual) == len(expected)
