"""1,536 and 3,072 dimensions: vector and halfvec columns, both searched through the HNSW
index (pgvector indexes vector up to 2,000 dimensions, halfvec up to 4,000)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from parlant.core.persistence.vector_database import BaseDocument, identity_loader
from vector_helpers import Hashing1536, Hashing3072, HashingEmbedder, MakePair, hash_vector

from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.vector_core import embedding_text
from parlant_supabase_sync.vector_ddl import column_type, vector_table_name

pytestmark = pytest.mark.anyio

WORDS = ["apple", "banana", "cherry", "delta", "echo", "fox", "golf", "hotel", "india", "juliet"]


class Doc(BaseDocument, total=False):
    rank: int


def _docs(n: int = 20) -> list[dict[str, Any]]:
    return [
        {
            "id": f"d{i:02}",
            "version": "0.1.0",
            "content": " ".join(WORDS[(i + j) % len(WORDS)] for j in range(1 + i % 3)),
            "checksum": str(i),
            "rank": i,
        }
        for i in range(n)
    ]


def _ranked(results: Any, k: int) -> list[tuple[str, float]]:
    # halfvec keeps ~3 significant digits: compare distances to 3 decimals.
    ranked = sorted(
        ((r.document["id"], round(r.distance, 3)) for r in results), key=lambda x: (x[1], x[0])
    )
    return ranked[:k]


@pytest.mark.parametrize("kind", [Hashing1536, Hashing3072])
async def test_large_embeddings_equal_transient(
    make_pair: MakePair, kind: type[HashingEmbedder]
) -> None:
    pair = make_pair({"docs": kind.DIMS})
    ours = await pair.supabase.get_or_create_collection("docs", Doc, kind, identity_loader)
    theirs = await pair.transient.get_or_create_collection("docs", Doc, kind, identity_loader)
    for doc in _docs():
        await ours.insert_one(dict(doc))
        await theirs.insert_one(dict(doc))
    for query in ("apple", "cherry delta", "golf hotel india", "zulu"):
        for where in ({}, {"rank": {"$lt": 10}}):
            got = await ours.find_similar_documents(where, query, 5)
            expected = await theirs.find_similar_documents(where, query, 5)
            assert _ranked(got, 5) == _ranked(expected, 5), (query, where)


def test_column_types() -> None:
    assert column_type(1536) == "extensions.vector(1536)"
    assert column_type(2000) == "extensions.vector(2000)"
    assert column_type(2001) == "extensions.halfvec(2001)"
    assert column_type(3072) == "extensions.halfvec(3072)"
    with pytest.raises(ValueError, match="4000"):
        column_type(4001)


@pytest.mark.parametrize(
    ("kind", "opclass"), [(Hashing1536, "vector_cosine_ops"), (Hashing3072, "halfvec_cosine_ops")]
)
async def test_search_uses_the_hnsw_index(
    make_pair: MakePair, vector_stack: LocalSupabase, kind: type[HashingEmbedder], opclass: str
) -> None:
    pair = make_pair({"docs": kind.DIMS})
    ours = await pair.supabase.get_or_create_collection("docs", Doc, kind, identity_loader)
    for doc in _docs(50):
        await ours.insert_one(dict(doc))
    table = vector_table_name(pair.prefix, "docs")
    [(indexdef,)] = vector_stack.query(
        "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexdef LIKE '%%hnsw%%'", [table]
    )
    assert opclass in indexdef
    literal = embedding_text(hash_vector("apple banana", kind.DIMS), kind.DIMS)
    dims_type = column_type(kind.DIMS)
    # The statement parlant_vector_search runs (ORDER BY distance, id LIMIT k). 50 rows are too
    # few for the planner to prefer the index by cost: sequential scans are priced out.
    with psycopg.connect(vector_stack.database_url) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                f"EXPLAIN SELECT t.id FROM public.{table} AS t "
                f"ORDER BY t.embedding OPERATOR(extensions.<=>) %s::{dims_type}, t.id LIMIT 5",
                [literal],
            )
        )
    assert "hnsw" in plan and "Index Scan" in plan, plan
