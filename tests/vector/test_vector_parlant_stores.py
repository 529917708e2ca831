"""Parlant's own GlossaryVectorStore over SupabaseVectorDatabase: the same answers as over
TransientVectorDatabase, and the terms survive a restart without being embedded again."""

from __future__ import annotations

from typing import Any

import pytest
from parlant.adapters.db.transient import TransientDocumentDatabase
from parlant.core.common import IdGenerator
from parlant.core.glossary import GlossaryVectorStore, Term
from parlant.core.nlp.embedding import EmbedderFactory, NullEmbeddingCache
from parlant.core.persistence.vector_database import VectorDatabase
from parlant.core.tracer import LocalTracer
from vector_helpers import MakePair, Pair, TieFreeEmbedder

from parlant_supabase_sync.vector_facade import SupabaseVectorDatabase

pytestmark = pytest.mark.anyio

TERMS = [
    ("Apple", "a red fruit growing on trees", ["pomme"]),
    ("Banana", "a long yellow fruit", []),
    ("Delta", "a river mouth with sediment", ["estuary"]),
    ("Echo", "a sound reflected back", []),
    ("Fox", "a small wild canine with a bushy tail", ["vixen"]),
    ("Golf", "a sport with clubs and a small ball", []),
    ("Hotel", "a place to stay for travellers", ["inn"]),
    ("Cherry", "a small red stone fruit", []),
]
QUERIES = ["red fruit", "a river and a sound", "small wild animal", "travel sport ball"]


def _store(pair: Pair, vector_db: VectorDatabase) -> GlossaryVectorStore:
    async def embedder_type() -> type[TieFreeEmbedder]:
        return TieFreeEmbedder

    return GlossaryVectorStore(
        IdGenerator(),
        vector_db=vector_db,
        document_db=TransientDocumentDatabase(),
        embedder_type_provider=embedder_type,
        embedder_factory=EmbedderFactory(pair.container),
    )


async def _fill(store: GlossaryVectorStore) -> list[Term]:
    return [
        await store.create_term(name, description, synonyms=synonyms, id=f"term_{name.lower()}")  # type: ignore[arg-type]
        for name, description, synonyms in TERMS
    ]


def _names(terms: Any) -> list[str]:
    return [term.name for term in terms]


async def test_glossary_equals_transient_and_survives_restart(make_pair: MakePair) -> None:
    pair = make_pair({"glossary": TieFreeEmbedder.DIMS})
    async with _store(pair, pair.supabase) as ours, _store(pair, pair.transient) as theirs:
        our_terms = await _fill(ours)
        their_terms = await _fill(theirs)
        assert _names(await ours.list_terms()) == _names(await theirs.list_terms())
        for query in QUERIES:
            for k in (1, 3):
                got = await ours.find_relevant_terms(query, our_terms, max_terms=k)
                expected = await theirs.find_relevant_terms(query, their_terms, max_terms=k)
                assert _names(got) == _names(expected), (query, k)
        updated = await ours.update_term(our_terms[3].id, {"description": "a bounced sound"})
        assert updated.description == "a bounced sound"
        await ours.delete_term(our_terms[4].id)
    embedder = pair.embedder(TieFreeEmbedder)
    embedded = len(embedder.calls)

    # A new server: a new database object on the same tables, nothing embedded again.
    restarted = SupabaseVectorDatabase.from_transport(
        pair.transport,
        pair.prefix,
        embedder_factory=EmbedderFactory(pair.container),
        embedding_cache_provider=NullEmbeddingCache,
        tracer=LocalTracer(),
    )
    async with _store(pair, restarted) as again:
        terms = await again.list_terms()
        assert _names(terms) == [name for name, _, _ in TERMS if name != "Fox"]
        echo = await again.read_term(our_terms[3].id)
        assert echo.description == "a bounced sound"
        assert len(embedder.calls) == embedded
        found = await again.find_relevant_terms("red fruit", terms, max_terms=2)
        assert {t.name for t in found} <= {"Apple", "Cherry", "Banana"}
    assert "version" in str(await restarted.read_metadata())


ITEMS = [
    ("Refunds", "return an order and get the money back"),
    ("Shipping", "send the parcel to the customer address"),
    ("Weather", "tell the forecast rain or sun"),
    ("Billing", "pay the invoice with a card"),
    ("Support", "talk to a human agent about a problem"),
    ("Booking", "reserve a hotel room or a table"),
]
ASKS = ["money back for my order", "rain tomorrow", "a human please", "pay by card for a room"]


def _vector_store(
    kind: str, pair: Pair, vector_db: VectorDatabase, document_db: Any | None = None
) -> Any:
    from parlant.core.canned_responses import CannedResponseVectorStore
    from parlant.core.capabilities import CapabilityVectorStore
    from parlant.core.journeys import JourneyVectorStore

    classes = {
        "capabilities": CapabilityVectorStore,
        "canned_responses": CannedResponseVectorStore,
        "journeys": JourneyVectorStore,
    }

    async def embedder_type() -> type[TieFreeEmbedder]:
        return TieFreeEmbedder

    return classes[kind](
        IdGenerator(),
        vector_db=vector_db,
        document_db=document_db if document_db is not None else TransientDocumentDatabase(),
        embedder_type_provider=embedder_type,
        embedder_factory=EmbedderFactory(pair.container),
    )


async def _create(kind: str, store: Any, title: str, text: str) -> Any:
    if kind == "capabilities":
        return await store.create_capability(title, text)
    if kind == "canned_responses":
        return await store.create_canned_response(f"{title}: {text}")
    return await store.create_journey(title, text, conditions=[])


async def _relevant(kind: str, store: Any, query: str, items: Any, k: int) -> list[str]:
    if kind == "capabilities":
        return [c.title for c in await store.find_relevant_capabilities(query, items, k)]
    if kind == "canned_responses":
        found = await store.filter_relevant_canned_responses(query, items, k)
        return [r.canned_response.value for r in found]
    return [j.title for j in await store.find_relevant_journeys(query, items, k)]


@pytest.mark.parametrize("kind", ["capabilities", "canned_responses", "journeys"])
async def test_parlant_vector_stores_equal_transient(make_pair: MakePair, kind: str) -> None:
    pair = make_pair({kind: TieFreeEmbedder.DIMS})
    # The stores' document side (Parlant's source of truth for these records) outlives the
    # restart, as the document stores on Supabase do; only the vector side is ours here.
    documents = TransientDocumentDatabase()
    async with (
        _vector_store(kind, pair, pair.supabase, documents) as ours,
        _vector_store(kind, pair, pair.transient) as theirs,
    ):
        our_items = [await _create(kind, ours, t, d) for t, d in ITEMS]
        their_items = [await _create(kind, theirs, t, d) for t, d in ITEMS]
        for query in ASKS:
            for k in (1, 2, 3):
                got = await _relevant(kind, ours, query, our_items, k)
                expected = await _relevant(kind, theirs, query, their_items, k)
                assert got == expected, (query, k)
    restarted = SupabaseVectorDatabase.from_transport(
        pair.transport,
        pair.prefix,
        embedder_factory=EmbedderFactory(pair.container),
        embedding_cache_provider=NullEmbeddingCache,
        tracer=LocalTracer(),
    )
    embedded = len(pair.embedder(TieFreeEmbedder).calls)
    async with _vector_store(kind, pair, restarted, documents) as again:
        assert len(pair.embedder(TieFreeEmbedder).calls) == embedded
        got = await _relevant(kind, again, ASKS[0], our_items, 2)
        assert got == await _relevant(kind, theirs, ASKS[0], their_items, 2)
