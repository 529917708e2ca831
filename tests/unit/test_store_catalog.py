"""naming.PARLANT_STORES equals what Parlant's own code opens, so a new Parlant store cannot be
missed: every class in the installed Parlant (outside its adapters, API and CLI) whose
constructor takes a DocumentDatabase is found, instantiated on a recording
TransientDocumentDatabase and entered, and the collections it opened are compared with the
table."""

from __future__ import annotations

import importlib
import inspect
import os
import tempfile
import typing
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("parlant")

from lagom import Container
from parlant.adapters.db.transient import TransientDocumentDatabase
from parlant.adapters.vector_db.transient import TransientVectorDatabase
from parlant.core.common import IdGenerator
from parlant.core.loggers import StdoutLogger
from parlant.core.nlp.embedding import (
    BasicEmbeddingCache,
    Embedder,
    EmbedderFactory,
    NullEmbedder,
    NullEmbeddingCache,
)
from parlant.core.persistence.document_database import (
    BaseDocument,
    DocumentCollection,
    DocumentDatabase,
    TDocument,
)
from parlant.core.tracer import LocalTracer

from parlant_supabase_sync.naming import (
    ALL_STORES,
    DEFAULT_STORES,
    EMBEDDINGS_COLLECTION,
    PARLANT_STORES,
    expand_store_names,
    resolve_store,
    store_for_prefix,
    store_layouts,
)

# Classes taking a DocumentDatabase that are no store of their own, and why.
NOT_STORES = {
    # Opens the `metadata` collection of the store it is given (every store's tables have one).
    "parlant.core.persistence.document_database_helper.DocumentStoreMigrationHelper",
    # The SDK's evaluation cache: Server builds it on a JSONFileDocumentDatabase it creates in
    # initialize (PARLANT_HOME/evaluation_cache.json); no hook can hand it another database,
    # and its collection names carry Parlant's version with dots (guideline_evaluations_3.3.2).
    "parlant.sdk._CachedEvaluator",
}
EMBEDDING_CACHE = "parlant.core.nlp.embedding.BasicEmbeddingCache"


class RecordingDatabase(TransientDocumentDatabase):
    """A TransientDocumentDatabase that remembers the name of every collection opened."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: dict[str, None] = {}

    async def create_collection(
        self, name: str, schema: type[TDocument]
    ) -> DocumentCollection[TDocument]:
        self.opened[name] = None
        return await super().create_collection(name, schema)

    async def get_collection(
        self,
        name: str,
        schema: type[TDocument],
        document_loader: Callable[[BaseDocument], Awaitable[TDocument | None]],
    ) -> DocumentCollection[TDocument]:
        self.opened[name] = None
        return await super().get_collection(name, schema, document_loader)

    async def get_or_create_collection(
        self,
        name: str,
        schema: type[TDocument],
        document_loader: Callable[[BaseDocument], Awaitable[TDocument | None]],
    ) -> DocumentCollection[TDocument]:
        self.opened[name] = None
        return await super().get_or_create_collection(name, schema, document_loader)


def _parlant_modules() -> list[str]:
    # Parlant's packages are namespace packages (no __init__.py), which pkgutil does not walk.
    import parlant

    root = Path(next(iter(parlant.__path__)))
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[1] in ("adapters", "api", "bin") or parts[-1] == "__init__":
            continue
        names.append(".".join(parts))
    return names


def _document_database_classes() -> dict[str, type]:
    found: dict[str, type] = {}
    for module_name in _parlant_modules():
        module = importlib.import_module(module_name)
        for name, cls in vars(module).items():
            if not inspect.isclass(cls) or cls.__module__ != module_name:
                continue
            hints = typing.get_type_hints(cls.__init__)
            if any(
                isinstance(hint, type)
                and typing.get_origin(hint) is None  # list[int] is a "class" on Python 3.10
                and issubclass(hint, DocumentDatabase)
                for hint in hints.values()
            ):
                found[f"{module_name}.{name}"] = cls
    return found


# parlant.sdk imports parlant.bin.server, which creates PARLANT_HOME (default ./parlant-data) and
# logs there: point it at a temporary directory unless the run chose one.
os.environ.setdefault("PARLANT_HOME", tempfile.mkdtemp(prefix="pss-parlant-home-"))
PARLANT_CLASSES = _document_database_classes()


async def _collections_opened(cls: type) -> list[str]:
    tracer = LocalTracer()
    logger = StdoutLogger(tracer)
    embedders = EmbedderFactory(Container())
    database = RecordingDatabase()

    async def embedder_type() -> type[Embedder]:
        return NullEmbedder

    arguments: dict[str, Any] = {
        "id_generator": IdGenerator(),
        "database": database,
        "document_db": database,
        "vector_db": TransientVectorDatabase(logger, tracer, embedders, NullEmbeddingCache),
        "embedder_factory": embedders,
        "embedder_type_provider": embedder_type,
        "logger": logger,
        "tracer": tracer,
        "event_emitter_factory": None,
        "nlp_services_provider": dict,
        "allow_migration": False,
    }
    parameters = inspect.signature(cls).parameters
    missing = [name for name in parameters if name not in arguments]
    assert not missing, f"{cls.__name__} takes arguments the test does not know: {missing}"
    async with cls(**{name: arguments[name] for name in parameters}):
        pass
    return list(database.opened)


def test_every_parlant_class_on_a_document_database_is_known() -> None:
    stores = {spec.parlant_class for spec in PARLANT_STORES.values()}
    unknown = {
        path
        for path, cls in PARLANT_CLASSES.items()
        if cls.__name__ not in stores and path not in NOT_STORES
    }
    assert not unknown, f"Parlant has document stores naming.PARLANT_STORES lacks: {unknown}"
    assert NOT_STORES <= set(PARLANT_CLASSES), "a NOT_STORES entry is gone from Parlant"
    assert {cls.__name__ for cls in PARLANT_CLASSES.values()} >= stores


@pytest.mark.parametrize(
    "path",
    sorted(set(PARLANT_CLASSES) - NOT_STORES - {EMBEDDING_CACHE}),
)
@pytest.mark.anyio
async def test_each_store_opens_exactly_the_collections_of_the_table(path: str) -> None:
    cls = PARLANT_CLASSES[path]
    (spec,) = [s for s in PARLANT_STORES.values() if s.parlant_class == cls.__name__]
    opened = await _collections_opened(cls)
    assert sorted(opened) == sorted(spec.collections)
    # The main collection (the one a custom prefix ends in) is the first one the store opens
    # after `metadata`.
    assert next(name for name in opened if name != "metadata") == spec.collections[0]


@pytest.mark.anyio
async def test_parlants_embedding_cache_names_collections_by_embedder() -> None:
    # Parlant's cache opens one collection per embedder class (no metadata), which is why the
    # adapter's cache keeps them in one collection of known name instead.
    database = RecordingDatabase()
    cache = BasicEmbeddingCache(database)
    await cache.set(NullEmbedder, ["text"], [[0.0]])
    assert list(database.opened) == [NullEmbedder.__name__]
    assert PARLANT_STORES["cache_embeddings"].collections == (EMBEDDINGS_COLLECTION,)


def test_prefixes_keys_and_names() -> None:
    assert list(PARLANT_STORES)[:3] == list(DEFAULT_STORES)
    for key, spec in PARLANT_STORES.items():
        assert spec.prefix == f"parlant_{key}_"
        assert store_for_prefix(spec.prefix) == key
        assert resolve_store(key).prefix == spec.prefix
        assert resolve_store(spec.prefix).key == key
        custom = resolve_store(f"acme_{spec.collections[0]}_")
        assert custom.key is None and custom.collections == spec.collections
    assert store_for_prefix("acme_glossary_tags_") == "glossary"  # the longest main collection
    assert expand_store_names(["sessions", ALL_STORES]) == list(PARLANT_STORES)
    assert [layout.key for layout in store_layouts([ALL_STORES])] == list(PARLANT_STORES)


def test_lookup_indexes_name_collections_of_the_stores() -> None:
    from parlant_supabase_sync.ddl_indexes import LOOKUP_KEYS

    collections = {c for spec in PARLANT_STORES.values() for c in spec.collections}
    assert set(LOOKUP_KEYS) <= collections
    seeded = {c for spec in DEFAULT_STORES.values() for c in spec.collections}
    assert not set(LOOKUP_KEYS) & seeded  # the conversation stores' indexes stay as they were


def test_sql_prints_every_store_or_a_chosen_set(capsys: pytest.CaptureFixture[str]) -> None:
    from parlant_supabase_sync import ddl
    from parlant_supabase_sync.cli import main

    assert main(["sql", "--prefix", ALL_STORES]) == 0
    assert capsys.readouterr().out == ddl.generated_files()["every_store.sql"]
    assert main(["sql", "--prefix", "agents", "--prefix", "parlant_journeys_"]) == 0
    out = capsys.readouterr().out
    assert '"public"."parlant_agents_agent_tags"' in out
    assert '"public"."parlant_journeys_journey_edges"' in out
    assert "parlant_sessions_" not in out and "parlant_write" in out
