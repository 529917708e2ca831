"""Unknown store and collection names are answered with the known ones, before any request;
custom prefixes keep working."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from parlant_supabase_sync import connect
from parlant_supabase_sync.api import Connection, UnknownCollection, UnknownStore
from parlant_supabase_sync.local.stack import LocalSupabase


@pytest.fixture
def db(local_supabase: LocalSupabase) -> Iterator[Connection]:
    with connect(url=local_supabase.url, key=local_supabase.secret_key) as connection:
        local_supabase.requests.clear()
        yield connection
    assert local_supabase.requests.count() == 0  # every name was refused or resolved offline


def test_a_misspelt_store_names_the_known_stores(db: Connection) -> None:
    with pytest.raises(UnknownStore) as refused:
        db.store("sesions")
    assert str(refused.value).startswith(
        "unknown store 'sesions' (known: sessions, customers, context_variables;"
    )
    assert isinstance(refused.value, ValueError)


def test_a_misspelt_collection_names_the_stores_collections(db: Connection) -> None:
    with pytest.raises(UnknownCollection) as refused:
        db.store("sessions").collection("event")
    assert str(refused.value) == (
        "unknown collection 'event' in store 'sessions' (known: sessions, events, metadata)"
    )
    with pytest.raises(UnknownCollection, match=r"in store 'acme_customers_' \(known: customers,"):
        db.store("acme_customers_").collection("customer")
    with pytest.raises(UnknownCollection, match="known: variables, variable_tag_associations"):
        db.store("context_variables")["value"]


@pytest.mark.parametrize("name", ["", "no-such store", "a\nb", "x" * 500, "bad-prefix_"])
def test_names_that_are_no_store_are_one_line(db: Connection, name: str) -> None:
    with pytest.raises(UnknownStore) as refused:
        db.store(name)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 400


def test_custom_prefixes_keep_working(db: Connection) -> None:
    acme = db.store("acme_")
    assert acme.collections == () and acme.collection("orders").table == "acme_orders"
    sessions = db.store("acme_sessions_")
    assert sessions.key is None and sessions.collection("events").table == "acme_sessions_events"
    assigned = db.store("shop=customers")
    assert assigned.collections[0] == "customers" and assigned.label == "shop"
    with pytest.raises(UnknownCollection):
        assigned.collection("events")
    with pytest.raises(UnknownStore, match="PREFIX=STORE"):
        db.store("acme_=nope")
    assert db.store("parlant_customers_") is db.store("customers")
