"""Parlant's other stores (beyond sessions, customers and context variables) on open
Supabase databases, and how they are put into a Parlant container.

`supabase_stores(every_store=True)` (wiring.py) opens the databases, checks the schema and
enters the plain document stores; `ContainerWiring` then builds the service registry and the
four vector stores (both need the NLP service) and defines everything in the container:
`configure` before Parlant builds its defaults (it builds only what is not defined yet),
`initialize` after. The embedding cache reaches Parlant through the vector databases' cache
provider, not the container: Parlant defines the container's `EmbeddingCache` itself after
`configure`, unconditionally, and a lagom container refuses a second definition.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from typing import Any, cast

from lagom import Container
from parlant.adapters.vector_db.transient import TransientVectorDatabase
from parlant.core.agents import AgentDocumentStore, AgentStore
from parlant.core.canned_responses import CannedResponseStore, CannedResponseVectorStore
from parlant.core.capabilities import CapabilityStore, CapabilityVectorStore
from parlant.core.common import IdGenerator, Version
from parlant.core.emission.event_publisher import EventPublisherFactory
from parlant.core.emissions import EventEmitterFactory
from parlant.core.evaluations import EvaluationDocumentStore, EvaluationStore
from parlant.core.glossary import GlossaryStore, GlossaryVectorStore
from parlant.core.guideline_tool_associations import (
    GuidelineToolAssociationDocumentStore,
    GuidelineToolAssociationStore,
)
from parlant.core.guidelines import GuidelineDocumentStore, GuidelineStore
from parlant.core.journeys import JourneyStore, JourneyVectorStore
from parlant.core.loggers import Logger
from parlant.core.nlp.embedding import (
    Embedder,
    EmbedderFactory,
    EmbeddingCache,
    EmbeddingCacheProvider,
    EmbeddingResult,
)
from parlant.core.nlp.service import NLPService
from parlant.core.persistence.common import ObjectId
from parlant.core.persistence.document_database import (
    BaseDocument,
    DocumentCollection,
    DocumentDatabase,
)
from parlant.core.persistence.vector_database import VectorDatabase
from parlant.core.relationships import RelationshipDocumentStore, RelationshipStore
from parlant.core.services.tools.service_registry import (
    ServiceDocumentRegistry,
    ServiceRegistry,
)
from parlant.core.sessions import SessionStore
from parlant.core.tags import TagDocumentStore, TagStore
from parlant.core.tracer import Tracer
from typing_extensions import TypedDict, override

from parlant_supabase_sync.naming import EMBEDDINGS_COLLECTION

__all__ = [
    "DOCUMENT_STORES",
    "NLP_SERVICE_NAME",
    "VECTOR_STORES",
    "ContainerWiring",
    "SupabaseEmbeddingCache",
    "VectorDatabaseFactory",
    "open_document_stores",
    "transient_vector_database",
]

#: Plain document stores: store key → (Parlant interface, implementation). Entered at once.
DOCUMENT_STORES: Mapping[str, tuple[type, type]] = {
    "agents": (AgentStore, AgentDocumentStore),
    "tags": (TagStore, TagDocumentStore),
    "guidelines": (GuidelineStore, GuidelineDocumentStore),
    "guideline_tool_associations": (
        GuidelineToolAssociationStore,
        GuidelineToolAssociationDocumentStore,
    ),
    "relationships": (RelationshipStore, RelationshipDocumentStore),
    "evaluations": (EvaluationStore, EvaluationDocumentStore),
}
#: The vector stores' document side: store key → (Parlant interface, implementation).
VECTOR_STORES: Mapping[str, tuple[type, type]] = {
    "glossary": (GlossaryStore, GlossaryVectorStore),
    "canned_responses": (CannedResponseStore, CannedResponseVectorStore),
    "journeys": (JourneyStore, JourneyVectorStore),
    "capabilities": (CapabilityStore, CapabilityVectorStore),
}
#: The name the service registry lists the container's NLP service under (the SDK's name).
NLP_SERVICE_NAME = "__nlp__"

#: Builds the vector database of one vector store: (store key, container, embedding cache
#: provider) → database. An async context manager is entered and exited with the stores.
VectorDatabaseFactory = Callable[
    [str, Container, EmbeddingCacheProvider], Awaitable[VectorDatabase]
]


async def transient_vector_database(
    store: str, container: Container, cache: EmbeddingCacheProvider
) -> VectorDatabase:
    """Parlant's own choice (in memory, re-embedded at every start): the default factory."""
    return TransientVectorDatabase(
        _get(container, Logger), _get(container, Tracer), EmbedderFactory(container), cache
    )


def _get(container: Container, interface: Any) -> Any:
    # Parlant's interfaces are abstract classes, which mypy refuses as lagom's type keys.
    return container[interface]


def _set(container: Container, interface: Any, value: Any) -> None:
    container[interface] = value


class _EmbeddingDocument(TypedDict, total=False):
    id: ObjectId
    version: Version.String
    creation_utc: str
    embedder: str
    vectors: Sequence[Sequence[float]]


class SupabaseEmbeddingCache(EmbeddingCache):
    """Parlant's embedding cache on a document database, in one collection (`embeddings`).

    Parlant's BasicEmbeddingCache opens a collection per embedder class, named after it, so
    its tables could not be created in advance; here the embedder's class name is part of each
    document's key (sha256 of embedder, texts and hints) and stored next to the vectors.
    Writes are upserts, so two replicas caching the same texts do not collide.
    """

    VERSION = Version.from_string("0.1.0")

    def __init__(self, database: DocumentDatabase) -> None:
        self._database = database
        self._collection: DocumentCollection[_EmbeddingDocument] | None = None

    async def _documents(self) -> DocumentCollection[_EmbeddingDocument]:
        if self._collection is None:

            async def load(document: BaseDocument) -> _EmbeddingDocument | None:
                return cast(_EmbeddingDocument, document)

            self._collection = await self._database.get_or_create_collection(
                EMBEDDINGS_COLLECTION, _EmbeddingDocument, load
            )
        return self._collection

    @staticmethod
    def key(embedder_type: type[Embedder], texts: list[str], hints: Mapping[str, Any]) -> str:
        """The document id of one cached result."""
        content = json.dumps(
            [embedder_type.__name__, list(texts), dict(hints)], sort_keys=True, default=str
        )
        return hashlib.sha256(content.encode("utf-8")).hexdigest()

    @override
    async def get(
        self, embedder_type: type[Embedder], texts: list[str], hints: Mapping[str, Any] = {}
    ) -> EmbeddingResult | None:
        collection = await self._documents()
        key = ObjectId(self.key(embedder_type, texts, hints))
        document = await collection.find_one({"id": {"$eq": key}})
        return EmbeddingResult(vectors=document["vectors"]) if document else None

    @override
    async def set(
        self,
        embedder_type: type[Embedder],
        texts: list[str],
        vectors: Sequence[Sequence[float]],
        hints: Mapping[str, Any] = {},
    ) -> None:
        collection = await self._documents()
        key = ObjectId(self.key(embedder_type, texts, hints))
        document = _EmbeddingDocument(
            id=key,
            version=self.VERSION.to_string(),
            creation_utc=datetime.now(timezone.utc).isoformat(),
            embedder=embedder_type.__name__,
            vectors=[list(vector) for vector in vectors],
        )
        await collection.update_one({"id": {"$eq": key}}, document, upsert=True)


async def open_document_stores(
    stack: AsyncExitStack,
    databases: Mapping[str, DocumentDatabase],
    ids: IdGenerator,
    allow_migration: bool,
) -> dict[type, Any]:
    """Enter the plain document stores on their databases; Parlant interface → store."""
    stores: dict[type, Any] = {}
    for key, (interface, implementation) in DOCUMENT_STORES.items():
        arguments: dict[str, Any] = {"database": databases[key], "allow_migration": allow_migration}
        if "id_generator" in inspect.signature(implementation).parameters:
            arguments["id_generator"] = ids
        stores[interface] = await stack.enter_async_context(implementation(**arguments))
    return stores


class ContainerWiring:
    """Puts the stores into a Parlant container: `configure`, then `initialize`."""

    def __init__(
        self,
        *,
        stack: AsyncExitStack,
        databases: Mapping[str, DocumentDatabase],
        conversation: Mapping[type, Any],
        document_stores: Mapping[type, Any],
        embedding_cache: EmbeddingCache | None,
        ids: IdGenerator,
        allow_migration: bool,
        vector_database: VectorDatabaseFactory | None,
    ) -> None:
        self._stack = stack
        self._databases = databases
        self._defined = {**conversation, **document_stores}
        self._cache = embedding_cache
        self._ids = ids
        self._allow_migration = allow_migration
        self._vector_database = vector_database or transient_vector_database
        self._container: Container | None = None
        self._pending: list[Any] = []
        self.built: dict[type, Any] = {}

    def _latest(self) -> Container:
        assert self._container is not None
        return self._container

    async def configure(self, container: Container) -> Container:
        """Define every store in `container` (and return it); enter the registry and the vector
        stores now if the container has an NLP service, else in `initialize`."""
        self._container = container
        for interface, store in self._defined.items():
            _set(container, interface, store)
        if AgentStore in self._defined:
            # The engine (and the registry's tools) emit events through this factory.
            _set(
                container,
                EventEmitterFactory,
                EventPublisherFactory(
                    agent_store=_get(container, AgentStore),
                    session_store=_get(container, SessionStore),
                ),
            )
        if "services" in self._databases and not self.built:
            self.built = await self._build(container)
            self._pending = list(self.built.values())
        for interface, store in self.built.items():
            _set(container, interface, store)
        if NLPService in container.defined_types:
            await self._enter_pending()
        return container

    async def initialize(self, container: Container) -> None:
        """Enter what `configure` could not yet (Parlant has defined its NLP service now)."""
        self._container = container
        await self._enter_pending()

    async def _enter_pending(self) -> None:
        while self._pending:
            await self._stack.enter_async_context(self._pending.pop(0))

    async def _build(self, container: Container) -> dict[type, Any]:
        latest = self._latest
        cache = self._cache

        def cache_provider() -> EmbeddingCache:
            return cache if cache is not None else _get(latest(), EmbeddingCache)

        async def embedder_type() -> type[Embedder]:
            return type(await _get(latest(), NLPService).get_embedder())

        built: dict[type, Any] = {
            ServiceRegistry: ServiceDocumentRegistry(
                database=self._databases["services"],
                event_emitter_factory=_get(container, EventEmitterFactory),
                logger=_get(container, Logger),
                tracer=_get(container, Tracer),
                nlp_services_provider=lambda: {NLP_SERVICE_NAME: _get(latest(), NLPService)},
                allow_migration=self._allow_migration,
            )
        }
        for key, (interface, implementation) in VECTOR_STORES.items():
            vector_db = await self._vector_database(key, container, cache_provider)
            if hasattr(vector_db, "__aenter__"):
                vector_db = await self._stack.enter_async_context(cast(Any, vector_db))
            built[interface] = implementation(
                id_generator=self._ids,
                vector_db=vector_db,
                document_db=self._databases[key],
                embedder_type_provider=embedder_type,
                embedder_factory=EmbedderFactory(container),
                allow_migration=self._allow_migration,
            )
        return built
