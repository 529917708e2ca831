"""SupabaseVectorDatabase against Parlant's TransientVectorDatabase on the same embedder."""

from __future__ import annotations

from typing import Any

import pytest
from parlant.core.persistence.vector_database import (
    BaseDocument,
    SimilarDocumentResult,
    identity_loader,
)
from vector_helpers import HashingEmbedder, MakePair, Pair

from parlant_supabase_sync.errors import SupabaseSyncError
from parlant_supabase_sync.local import LocalSupabase

pytestmark = pytest.mark.anyio


class Doc(BaseDocument, total=False):
    kind: str
    rank: int


WORDS = ["apple", "banana", "cherry", "delta", "echo", "fox", "golf", "hotel"]


def documents(n: int = 24) -> list[dict[str, Any]]:
    docs = []
    for i in range(n):
        words = [WORDS[(i * 3 + j) % len(WORDS)] for j in range(1 + i % 3)]
        docs.append(
            {
                "id": f"d{i:02}",
                "version": "0.1.0",
                "content": " ".join(words),
                "checksum": f"c{i}",
                "kind": "even" if i % 2 == 0 else "odd",
                "rank": i,
            }
        )
    return docs


async def _collections(pair: Pair) -> tuple[Any, Any]:
    ours = await pair.supabase.get_or_create_collection(
        "docs", Doc, HashingEmbedder, identity_loader
    )
    theirs = await pair.transient.get_or_create_collection(
        "docs", Doc, HashingEmbedder, identity_loader
    )
    return ours, theirs


def _ranked(results: Any, k: int) -> list[tuple[str, float]]:
    # Ties are defined by id (ours by SQL, Transient's sorted here); rounded distances absorb
    # float32 (Transient) against float8 (pgvector's <=>) differences.
    ranked = sorted(
        ((r.document["id"], round(r.distance, 5)) for r in results), key=lambda x: (x[1], x[0])
    )
    return ranked[:k]


async def _fill(pair: Pair) -> tuple[Any, Any]:
    ours, theirs = await _collections(pair)
    for doc in documents():
        await ours.insert_one(dict(doc))
        await theirs.insert_one(dict(doc))
    return ours, theirs


QUERIES = ["apple banana", "cherry", "fox golf hotel", "zulu", "echo delta apple"]
FILTERS: list[dict[str, Any]] = [
    {},
    {"kind": {"$eq": "odd"}},
    {"rank": {"$gte": 10}},
    {"$or": [{"kind": {"$eq": "even"}}, {"rank": {"$lt": 3}}]},
    {"id": {"$in": ["d01", "d05", "d07"]}},
    {"id": {"$in": []}},
]


async def test_search_equals_transient(pair: Pair) -> None:
    ours, theirs = await _fill(pair)
    for query in QUERIES:
        for where in FILTERS:
            for k in (1, 3, 10, 100):
                got = await ours.find_similar_documents(where, query, k)
                expected = await theirs.find_similar_documents(where, query, k)
                assert _ranked(got, k) == _ranked(expected, k), (query, where, k)
                # ours: exactly k (or all matching), ordered by distance then id
                assert [(r.document["id"], round(r.distance, 5)) for r in got] == _ranked(got, k)
                assert all(isinstance(r, SimilarDocumentResult) for r in got)


async def test_search_returns_whole_documents(pair: Pair) -> None:
    ours, _ = await _fill(pair)
    [best] = await ours.find_similar_documents({}, "apple", 1)
    stored = await ours.find_one({"id": {"$eq": best.document["id"]}})
    assert best.document == stored


async def test_find_update_delete_equal_transient(pair: Pair) -> None:
    ours, theirs = await _fill(pair)
    for where in FILTERS:
        assert list(await ours.find(where)) == list(await theirs.find(where)), where
        assert await ours.find_one(where) == await theirs.find_one(where), where

    for target in (ours, theirs):
        result = await target.update_one(
            {"id": {"$eq": "d03"}}, {"content": "zulu yankee", "rank": 99}
        )
        assert (result.matched_count, result.modified_count) == (1, 1)
        assert result.updated_document["rank"] == 99
        missing = await target.update_one({"id": {"$eq": "nope"}}, {"rank": 1})
        assert (missing.matched_count, missing.updated_document) == (0, None)
        new = {
            "id": "n1",
            "version": "0.1.0",
            "content": "zulu",
            "checksum": "x",
            "kind": "new",
            "rank": 0,
        }
        if target is ours:
            upserted = await target.update_one({"id": {"$eq": "n1"}}, new, upsert=True)
            assert (upserted.matched_count, upserted.updated_document) == (0, new)
        else:
            # Transient's upsert calls insert_one under the lock update_one holds (a deadlock in
            # Parlant 3.3.2); what it would do is an insert.
            await target.insert_one(new)
        deleted = await target.delete_one({"kind": {"$eq": "odd"}})
        assert deleted.deleted_count == 1 and deleted.deleted_document["id"] == "d01"
        none = await target.delete_one({"id": {"$eq": "nope"}})
        assert (none.deleted_count, none.deleted_document) == (0, None)

    assert list(await ours.find({})) == list(await theirs.find({}))
    got = await ours.find_similar_documents({}, "zulu yankee", 3)
    expected = await theirs.find_similar_documents({}, "zulu yankee", 3)
    # Transient keeps only the update's params in its index (Parlant 3.3.2), so its hits lose
    # their id after an update: compare the distances.
    assert [round(r.distance, 5) for r in got] == sorted(round(r.distance, 5) for r in expected)[:3]
    assert got[0].document["id"] == "d03" and got[0].document["rank"] == 99


async def test_reembeds_only_when_content_changes(pair: Pair) -> None:
    ours, _ = await _collections(pair)
    embedder = pair.embedder(HashingEmbedder)
    doc = documents(1)[0]
    await ours.insert_one(dict(doc))
    assert embedder.calls == [doc["content"]]
    await ours.update_one({"id": {"$eq": doc["id"]}}, {"rank": 5})
    await ours.update_one({"id": {"$eq": doc["id"]}}, {"content": doc["content"], "rank": 6})
    assert embedder.calls == [doc["content"]]
    await ours.update_one({"id": {"$eq": doc["id"]}}, {"content": "zulu"})
    assert embedder.calls == [doc["content"], "zulu"]
    [hit] = await ours.find_similar_documents({}, "zulu", 1)
    assert hit.distance == pytest.approx(0.0, abs=1e-6)
    assert hit.document["rank"] == 6


async def test_one_request_per_search(pair: Pair) -> None:
    ours, _ = await _fill(pair)
    stats = pair.transport.stats
    for where in FILTERS[:5]:
        before = stats.total_requests
        await ours.find_similar_documents(where, "apple", 5)
        assert stats.total_requests - before == 1


async def test_metadata(pair: Pair) -> None:
    db = pair.supabase
    assert await db.read_metadata() == {}
    await db.upsert_metadata("version", "0.1.0")
    await db.upsert_metadata("nested", {"a": [1, 2]})
    await db.upsert_metadata("version", "0.2.0")
    assert await db.read_metadata() == {"nested": {"a": [1, 2]}, "version": "0.2.0"}
    await db.remove_metadata("nested")
    assert await db.read_metadata() == {"version": "0.2.0"}
    with pytest.raises(KeyError):
        await db.remove_metadata("nested")


async def test_delete_collection_empties_it(pair: Pair) -> None:
    await _fill(pair)
    await pair.supabase.delete_collection("docs")
    again = await pair.supabase.get_or_create_collection(
        "docs", Doc, HashingEmbedder, identity_loader
    )
    assert list(await again.find({})) == []
    with pytest.raises(ValueError):
        await pair.supabase.delete_collection("never")


async def test_missing_table_is_a_clear_error(pair: Pair) -> None:
    with pytest.raises(SupabaseSyncError) as raised:
        await pair.supabase.get_or_create_collection(
            "absent", Doc, HashingEmbedder, identity_loader
        )
    message = str(raised.value)
    assert "vector_schema_sql" in message and "'absent': 64" in message


async def test_dimension_mismatch_is_refused(make_pair: MakePair) -> None:
    from vector_helpers import Hashing1536

    pair = make_pair({"docs": 32})
    with pytest.raises(SupabaseSyncError) as raised:
        await pair.supabase.get_or_create_collection("docs", Doc, Hashing1536, identity_loader)
    assert "32-dimension" in str(raised.value) and "1536" in str(raised.value)


def test_search_function_refuses_other_tables(vector_stack: LocalSupabase) -> None:
    vector_stack.execute_sql("CREATE TABLE IF NOT EXISTS public.not_vectors (id text);")
    with pytest.raises(Exception, match="is not a vector table"):
        vector_stack.query(
            "SELECT public.parlant_vector_search('not_vectors', '[1]', 1, '[]'::jsonb)"
        )


async def test_schema_sql_is_idempotent_and_keeps_data(
    pair: Pair, vector_stack: LocalSupabase
) -> None:
    from parlant_supabase_sync.vector_ddl import vector_schema_sql

    ours, _ = await _collections(pair)
    await ours.insert_one(dict(documents(1)[0]))
    vector_stack.execute_sql(vector_schema_sql(pair.prefix, {"docs": HashingEmbedder.DIMS}))
    assert [d["id"] for d in await ours.find({})] == ["d00"]


async def test_browser_roles_cannot_read_vectors(pair: Pair, vector_stack: LocalSupabase) -> None:
    from parlant_supabase_sync.settings import SupabaseSettings
    from parlant_supabase_sync.transport import Transport
    from parlant_supabase_sync.vector_core import SyncVectorDatabase

    settings = SupabaseSettings(
        url=vector_stack.url, key=vector_stack.anon_key, allow_public_key=True
    )
    transport = Transport(settings)
    try:
        core = SyncVectorDatabase(table_prefix=pair.prefix, transport=transport)
        with pytest.raises(SupabaseSyncError):
            core.open_collection("docs", HashingEmbedder.DIMS)
        with pytest.raises(SupabaseSyncError):
            core.read_metadata()
    finally:
        transport.close()


def test_browser_roles_cannot_execute_the_functions(vector_stack: LocalSupabase) -> None:
    from parlant_supabase_sync.vector_ddl import vector_schema_sql

    vector_stack.execute_sql(vector_schema_sql("vtgrants_", {"docs": 8}))
    for role in ("anon", "authenticated"):
        for function in ("parlant_vector_search", "parlant_vector_find", "parlant_vector_write"):
            [(allowed,)] = vector_stack.query(
                "SELECT pg_catalog.has_function_privilege(%s, p.oid, 'EXECUTE') FROM pg_proc p "
                "WHERE p.proname = %s",
                [role, function],
            )
            assert allowed is False, (role, function)
