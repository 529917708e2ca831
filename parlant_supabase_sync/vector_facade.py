"""``SupabaseVectorDatabase``: Parlant's ``VectorDatabase`` on Supabase (pgvector).

Embeddings are computed here, on the event loop, with the collection's embedder (through the
embedding cache, as Parlant's TransientVectorDatabase does); every call into the synchronous
core is one ``anyio.to_thread.run_sync`` hop with the shared CapacityLimiter. A document is
re-embedded only when its ``content`` changes (its checksum is stored next to the embedding).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

import anyio
import anyio.to_thread
from parlant.core.common import JSONSerializable
from parlant.core.nlp.embedding import Embedder, EmbedderFactory, EmbeddingCacheProvider
from parlant.core.persistence.common import Where, ensure_is_total
from parlant.core.persistence.vector_database import (
    BaseDocument,
    BaseVectorCollection,
    DeleteResult,
    InsertResult,
    SimilarDocumentResult,
    TDocument,
    UpdateResult,
    VectorDatabase,
)
from parlant.core.tracer import Tracer
from typing_extensions import Self

from .settings import SupabaseSettings
from .transport import Transport
from .vector_core import SyncVectorCollection, SyncVectorDatabase, content_checksum
from .vector_ddl import vector_prefix

__all__ = ["SupabaseVectorCollection", "SupabaseVectorDatabase", "vector_database_factory"]

T = TypeVar("T")


class SupabaseVectorDatabase(VectorDatabase):
    """A Parlant vector database whose collections are pgvector tables in Supabase.

    The tables are created beforehand with ``vector_ddl.vector_schema_sql(prefix,
    {collection: dims})``; opening a collection whose table is missing raises an error naming
    that call. Pass the application's shared ``transport`` and ``limiter`` (see
    :meth:`from_transport`).
    """

    def __init__(
        self,
        *,
        table_prefix: str,
        embedder_factory: EmbedderFactory,
        embedding_cache_provider: EmbeddingCacheProvider,
        tracer: Tracer,
        settings: SupabaseSettings | None = None,
        transport: Transport | None = None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self._core = SyncVectorDatabase(settings, table_prefix=table_prefix, transport=transport)
        self._embedder_factory = embedder_factory
        self._cache_provider = embedding_cache_provider
        self._tracer = tracer
        workers = self._core.transport.settings.max_workers
        self._limiter = limiter if limiter is not None else anyio.CapacityLimiter(workers)
        self._collections: dict[str, SupabaseVectorCollection[Any]] = {}

    @classmethod
    def from_transport(
        cls,
        transport: Transport,
        table_prefix: str,
        *,
        embedder_factory: EmbedderFactory,
        embedding_cache_provider: EmbeddingCacheProvider,
        tracer: Tracer,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> SupabaseVectorDatabase:
        """The shape a wiring's ``VectorDatabaseFactory`` needs: everything shared."""
        return cls(
            table_prefix=table_prefix,
            embedder_factory=embedder_factory,
            embedding_cache_provider=embedding_cache_provider,
            tracer=tracer,
            transport=transport,
            limiter=limiter,
        )

    @property
    def core(self) -> SyncVectorDatabase:
        return self._core

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self._run(self._core.close)

    async def _open(
        self, name: str, schema: type[TDocument], embedder_type: type[Embedder]
    ) -> SupabaseVectorCollection[TDocument]:
        embedder = self._embedder_factory.create_embedder(embedder_type)
        core = await self._run(self._core.open_collection, name, embedder.dimensions)
        collection = SupabaseVectorCollection[TDocument](self, core, schema, embedder, self._tracer)
        self._collections[name] = collection
        return collection

    async def create_collection(
        self, name: str, schema: type[TDocument], embedder_type: type[Embedder]
    ) -> SupabaseVectorCollection[TDocument]:
        if name in self._collections:
            raise ValueError(f'Collection "{name}" already exists.')
        return await self._open(name, schema, embedder_type)

    async def get_collection(
        self,
        name: str,
        schema: type[TDocument],
        embedder_type: type[Embedder],
        document_loader: Callable[[BaseDocument], Awaitable[TDocument | None]],
    ) -> SupabaseVectorCollection[TDocument]:
        if name in self._collections:
            return cast(SupabaseVectorCollection[TDocument], self._collections[name])
        return await self._open(name, schema, embedder_type)

    async def get_or_create_collection(
        self,
        name: str,
        schema: type[TDocument],
        embedder_type: type[Embedder],
        document_loader: Callable[[BaseDocument], Awaitable[TDocument | None]],
    ) -> SupabaseVectorCollection[TDocument]:
        return await self.get_collection(name, schema, embedder_type, document_loader)

    async def delete_collection(self, name: str) -> None:
        """Removes every document of the collection (the table stays: DDL is not sent over
        the REST API)."""
        collection = self._collections.pop(name, None)
        if collection is None:
            raise ValueError(f'Collection "{name}" not found.')
        await self._run(collection.core.clear)

    async def upsert_metadata(self, key: str, value: JSONSerializable) -> None:
        await self._run(self._core.upsert_metadata, key, value)

    async def remove_metadata(self, key: str) -> None:
        if not await self._run(self._core.remove_metadata, key):
            raise KeyError(key)

    async def read_metadata(self) -> Mapping[str, JSONSerializable]:
        return await self._run(self._core.read_metadata)


class SupabaseVectorCollection(BaseVectorCollection[TDocument], Generic[TDocument]):
    def __init__(
        self,
        database: SupabaseVectorDatabase,
        core: SyncVectorCollection,
        schema: type[TDocument],
        embedder: Embedder,
        tracer: Tracer,
    ) -> None:
        super().__init__(tracer)
        self._database = database
        self._core = core
        self._schema = schema
        self._embedder = embedder
        self.embed_calls = 0  # texts sent to the embedder for documents (not queries)

    @property
    def core(self) -> SyncVectorCollection:
        return self._core

    async def _embed_content(self, content: str) -> Sequence[float]:
        cache = self._database._cache_provider()
        kind = type(self._embedder)
        cached = await cache.get(embedder_type=kind, texts=[content])
        if cached:
            return list(cached.vectors[0])
        self.embed_calls += 1
        vectors = list((await self._embedder.embed([content])).vectors)
        await cache.set(embedder_type=kind, texts=[content], vectors=vectors)
        return list(vectors[0])

    async def find(self, filters: Where) -> Sequence[TDocument]:
        rows = await self._database._run(self._core.find, filters)
        return cast(Sequence[TDocument], rows)

    async def find_one(self, filters: Where) -> TDocument | None:
        rows = await self._database._run(self._core.find, filters, 1)
        return cast(TDocument, rows[0]) if rows else None

    async def insert_one(self, document: TDocument) -> InsertResult:
        ensure_is_total(document, self._schema)
        content = str(document["content"])
        vector = await self._embed_content(content)
        await self._database._run(self._core.put, document, content_checksum(content), vector)
        return InsertResult(acknowledged=True)

    async def update_one(
        self, filters: Where, params: TDocument, upsert: bool = False
    ) -> UpdateResult[TDocument]:
        rows = await self._database._run(self._core.find_rows, filters, 1)
        if rows:
            stored = rows[0]
            checksum = vector = None
            if "content" in params:
                content = str(params["content"])
                if content_checksum(content) != stored.checksum:
                    checksum, vector = content_checksum(content), await self._embed_content(content)
            updated = await self._database._run(
                self._core.merge, str(stored.document["id"]), params, checksum, vector
            )
            return UpdateResult(True, 1, 1, cast(TDocument | None, updated))
        if upsert:
            ensure_is_total(params, self._schema)
            await self.insert_one(params)
            return UpdateResult(True, 0, 0, params)
        return UpdateResult(True, 0, 0, None)

    async def delete_one(self, filters: Where) -> DeleteResult[TDocument]:
        rows = await self._database._run(self._core.find, filters, 1)
        if not rows:
            return DeleteResult(acknowledged=True, deleted_count=0, deleted_document=None)
        deleted = await self._database._run(self._core.delete, str(rows[0]["id"]))
        return DeleteResult(
            acknowledged=True,
            deleted_count=1 if deleted is not None else 0,
            deleted_document=cast(TDocument | None, deleted),
        )

    async def do_find_similar_documents(
        self, filters: Where, query: str, k: int, hints: Mapping[str, Any] = {}
    ) -> Sequence[SimilarDocumentResult[TDocument]]:
        vector = list((await self._embedder.embed([query], hints)).vectors[0])
        rows = await self._database._run(self._core.search, vector, k, filters)
        return [
            SimilarDocumentResult(document=cast(TDocument, row.document), distance=row.distance)
            for row in rows
        ]


def vector_database_factory(
    transport: Transport,
    *,
    limiter: anyio.CapacityLimiter | None = None,
    prefix_for: Callable[[str], str] = vector_prefix,
) -> Callable[[str, Any, EmbeddingCacheProvider], Awaitable[VectorDatabase]]:
    """A ``VectorDatabaseFactory`` for the container wiring: ``(store key, container, embedding
    cache provider)`` → a SupabaseVectorDatabase on the shared ``transport`` and ``limiter``,
    its tables at ``prefix_for(store key)`` (default ``parlant_<store>_vectors_``)."""

    async def build(
        store: str, container: Any, cache_provider: EmbeddingCacheProvider
    ) -> VectorDatabase:
        return SupabaseVectorDatabase.from_transport(
            transport,
            prefix_for(store),
            embedder_factory=EmbedderFactory(container),
            embedding_cache_provider=cache_provider,
            tracer=container[Tracer],
            limiter=limiter,
        )

    return build
