"""Shared helpers of the core tests: the oracle (Transient) and the Pair harness."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, TypedDict

import anyio
from parlant.adapters.db.transient import TransientDocumentDatabase

from parlant_supabase_sync._types import ObjectId
from parlant_supabase_sync.core import SyncDocumentCollection, SyncDocumentDatabase


class Doc(TypedDict, total=False):
    id: ObjectId
    version: str
    creation_utc: str


MakeDb = Callable[..., SyncDocumentDatabase]


def unique_prefix() -> str:
    """A table prefix no other test uses, so tests share one stand-in without interfering."""
    return f"t{uuid.uuid4().hex[:12]}_"


def identity(document: dict[str, Any]) -> dict[str, Any]:
    return document


async def _aidentity(document: Any) -> Any:
    return document


class Oracle:
    """Parlant's TransientDocumentDatabase, called synchronously."""

    def __init__(self) -> None:
        self.db = TransientDocumentDatabase()

    def collection(self, name: str, schema: type[Any] = Doc) -> Any:
        return anyio.run(self.db.get_or_create_collection, name, schema, _aidentity)

    @staticmethod
    def call(collection: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        return anyio.run(partial(getattr(collection, method), *args, **kwargs))


class Pair:
    """The same collection on Transient and on the core; ``same()`` runs a call on each."""

    def __init__(self, oracle_collection: Any, core: SyncDocumentCollection) -> None:
        self.oracle = oracle_collection
        self.core = core

    def both(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        expected = Oracle.call(self.oracle, method, *args, **kwargs)
        actual = getattr(self.core, method)(*args, **kwargs)
        return expected, actual

    def same(self, method: str, *args: Any, **kwargs: Any) -> Any:
        expected, actual = self.both(method, *args, **kwargs)
        assert actual == expected, (method, args, kwargs)
        return actual

    def insert(self, *documents: dict[str, Any]) -> None:
        for document in documents:
            self.same("insert_one", document)
