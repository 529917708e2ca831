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
