"""A few thousand rows: the search goes through the HNSW index by cost, a selective filter
still gets k rows (iterative index scans), and recall against exact search is high."""

from __future__ import annotations

import random

import psycopg
from vector_helpers import HashingEmbedder, MakePair

from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.vector_core import SyncVectorDatabase, embedding_text
from parlant_supabase_sync.vector_ddl import vector_table_name

DIMS = HashingEmbedder.DIMS
ROWS = 3000


def _vector(rng: random.Random) -> list[float]:
    return [rng.uniform(-1, 1) for _ in range(DIMS)]


def test_filtered_search_through_the_index(
    make_pair: MakePair, vector_stack: LocalSupabase
) -> None:
    pair = make_pair({"docs": DIMS})
    table = vector_table_name(pair.prefix, "docs")
    rng = random.Random(7)
    with psycopg.connect(vector_stack.database_url, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO public.{table} (id, data, checksum, embedding) "
                "VALUES (%s, %s::jsonb, 'c', %s::extensions.vector)",
                [
                    (
                        f"r{i:05}",
                        f'{{"id": "r{i:05}", "group": "g{i % 50}"}}',
                        embedding_text(_vector(rng), DIMS),
                    )
                    for i in range(ROWS)
                ],
            )
        conn.execute(f"ANALYZE public.{table}")
    core = SyncVectorDatabase(table_prefix=pair.prefix, transport=pair.transport)
    collection = core.open_collection("docs", DIMS)
    query = _vector(rng)
    literal = embedding_text(query, DIMS)

    with psycopg.connect(vector_stack.database_url) as conn:
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                f"EXPLAIN SELECT t.id FROM public.{table} AS t "
                "ORDER BY t.embedding OPERATOR(extensions.<=>) %s::extensions.vector, t.id LIMIT 10",
                [literal],
            )
        )
        assert "_hnsw" in plan, plan
        exact = [
            row[0]
            for row in conn.execute(
                f"SELECT id FROM public.{table} WHERE data->>'group' = 'g3' "
                "ORDER BY embedding OPERATOR(extensions.<=>) %s::extensions.vector, id LIMIT 10",
                [literal],
            )
        ]
    before = pair.transport.stats.total_requests
    hits = collection.search(query, 10, {"group": {"$eq": "g3"}})
    assert pair.transport.stats.total_requests - before == 1
    # 60 rows of 3,000 match: a plain index scan would find about 10 × 60/3000 of them.
    assert len(hits) == 10
    assert all(hit.document["group"] == "g3" for hit in hits)
    distances = [hit.distance for hit in hits]
    assert distances == sorted(distances)
    recall = len({hit.document["id"] for hit in hits} & set(exact)) / 10
    assert recall >= 0.9, recall
    unfiltered = collection.search(query, 10, {})
    assert len(unfiltered) == 10
