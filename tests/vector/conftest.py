"""Fixtures of the vector tests: the pgvector stand-in, SupabaseVectorDatabase and Parlant's
TransientVectorDatabase (the oracle) over the same deterministic embedders."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("parlant")

sys.path.insert(0, str(Path(__file__).parent))

from lagom import Container
from parlant.adapters.vector_db.transient import TransientVectorDatabase
from parlant.core.loggers import LogLevel, StdoutLogger
from parlant.core.nlp.embedding import EmbedderFactory, NullEmbeddingCache
from parlant.core.tracer import LocalTracer
from vector_helpers import (
    Hashing1536,
    Hashing3072,
    HashingEmbedder,
    MakePair,
    Pair,
    TieFreeEmbedder,
    unique_prefix,
)

from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.transport import Transport
from parlant_supabase_sync.vector_ddl import vector_schema_sql
from parlant_supabase_sync.vector_facade import SupabaseVectorDatabase

EMBEDDERS: dict[type[HashingEmbedder], int] = {
    HashingEmbedder: HashingEmbedder.DIMS,
    TieFreeEmbedder: TieFreeEmbedder.DIMS,
    Hashing1536: Hashing1536.DIMS,
    Hashing3072: Hashing3072.DIMS,
}


@pytest.fixture(scope="session")
def vector_stack(local_supabase_vector: LocalSupabase) -> LocalSupabase:
    return local_supabase_vector


@pytest.fixture
def settings(vector_stack: LocalSupabase) -> SupabaseSettings:
    return SupabaseSettings(
        url=vector_stack.url,
        key=vector_stack.secret_key,
        retry={"base_delay": 0.01, "max_delay": 0.05},
    )


@pytest.fixture
def make_pair(vector_stack: LocalSupabase, settings: SupabaseSettings) -> Iterator[MakePair]:
    transports: list[Transport] = []

    def make(collections: Mapping[str, int]) -> Pair:
        prefix = unique_prefix()
        vector_stack.execute_sql(vector_schema_sql(prefix, collections))
        container = Container()
        for kind in EMBEDDERS:
            container[kind] = kind()
        tracer = LocalTracer()
        factory = EmbedderFactory(container)
        transport = Transport(settings)
        transports.append(transport)
        supabase = SupabaseVectorDatabase.from_transport(
            transport,
            prefix,
            embedder_factory=factory,
            embedding_cache_provider=NullEmbeddingCache,
            tracer=tracer,
        )
        logger = StdoutLogger(tracer, LogLevel.WARNING)
        transient = TransientVectorDatabase(logger, tracer, factory, NullEmbeddingCache)
        return Pair(supabase, transient, container, prefix, transport)

    yield make
    for transport in transports:
        transport.close()


@pytest.fixture
async def pair(make_pair: MakePair) -> AsyncIterator[Pair]:
    yield make_pair({"docs": HashingEmbedder.DIMS})


@pytest.fixture
def anyio_backend() -> Any:
    return "asyncio"
