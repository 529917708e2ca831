"""The vector stores' names against Parlant's code, and the factory the container wiring takes."""

from __future__ import annotations

import inspect
import re

import pytest
from lagom import Container
from parlant.core.canned_responses import CannedResponseVectorStore
from parlant.core.capabilities import CapabilityVectorStore
from parlant.core.glossary import GlossaryVectorStore
from parlant.core.journeys import JourneyVectorStore
from parlant.core.nlp.embedding import NullEmbeddingCache
from parlant.core.persistence.vector_database import identity_loader
from parlant.core.tracer import LocalTracer, Tracer
from vector_helpers import HashingEmbedder

from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.transport import Transport
from parlant_supabase_sync.vector_ddl import (
    VECTOR_COLLECTIONS,
    parlant_vector_schema_sql,
    vector_prefix,
    vector_table_name,
)
from parlant_supabase_sync.vector_facade import SupabaseVectorDatabase, vector_database_factory

pytestmark = pytest.mark.anyio

STORES = {
    "glossary": GlossaryVectorStore,
    "canned_responses": CannedResponseVectorStore,
    "journeys": JourneyVectorStore,
    "capabilities": CapabilityVectorStore,
}
_VECTOR_OPEN = re.compile(r'_vector_db\.get_or_create_collection\(\s*name="([^"]+)"', re.MULTILINE)


def test_vector_collections_match_parlant() -> None:
    assert set(VECTOR_COLLECTIONS) == set(STORES)
    for store, cls in STORES.items():
        source = inspect.getsource(inspect.getmodule(cls))  # type: ignore[arg-type]
        assert tuple(_VECTOR_OPEN.findall(source)) == VECTOR_COLLECTIONS[store], store


def test_table_names_are_pure() -> None:
    assert vector_prefix("glossary") == "parlant_glossary_vectors_"
    assert vector_table_name("parlant_glossary_vectors_", "glossary") == (
        "parlant_glossary_vectors_glossary"
    )
    with pytest.raises(ValueError, match="metadata"):
        vector_table_name("p_", "metadata")
    with pytest.raises(ValueError, match="unknown vector store"):
        parlant_vector_schema_sql(64, ["nope"])


async def test_factory_builds_on_the_shared_transport(vector_stack: LocalSupabase) -> None:
    vector_stack.execute_sql(parlant_vector_schema_sql(HashingEmbedder.DIMS, ["glossary"]))
    transport = Transport(SupabaseSettings(url=vector_stack.url, key=vector_stack.secret_key))
    container = Container()
    container[HashingEmbedder] = HashingEmbedder()
    container[Tracer] = LocalTracer()
    try:
        build = vector_database_factory(transport)
        db = await build("glossary", container, NullEmbeddingCache)
        assert isinstance(db, SupabaseVectorDatabase) and db.core.transport is transport
        async with db:
            collection = await db.get_or_create_collection(
                "glossary",
                dict,
                HashingEmbedder,
                identity_loader,  # type: ignore[arg-type]
            )
            assert collection.core.table == "parlant_glossary_vectors_glossary"
        assert not transport.closed
    finally:
        transport.close()
