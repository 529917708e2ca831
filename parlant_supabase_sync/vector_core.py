"""The synchronous vector database: vector collections and metadata over the shared Transport.

Every call is one request (``parlant_vector_find`` / ``_search`` / ``_write`` or one PostgREST
request on the metadata table), sent by ``Transport.send``: the same retries, limits and
error mapping as the document database. Embeddings are computed by the caller (the async
facade runs Parlant's embedder on the event loop) and arrive here as lists of floats.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, TableMissing
from .filters import compile_filter
from .settings import SupabaseSettings
from .transport import Expect, Transport
from .vector_ddl import (
    FIND_FUNCTION,
    SEARCH_FUNCTION,
    VECTOR_COLLECTIONS,
    WRITE_FUNCTION,
    column_type,
    metadata_table_name,
    vector_prefix,
    vector_table_name,
)

__all__ = [
    "SimilarRow",
    "StoredRow",
    "SyncVectorCollection",
    "SyncVectorDatabase",
    "content_checksum",
    "embedding_text",
]


def content_checksum(content: str) -> str:
    """The checksum stored next to an embedding: sha256 of the embedded content (UTF-8)."""
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def embedding_text(vector: Sequence[float], dims: int) -> str:
    """``'[x,y,…]'``, pgvector's text form, after checking length and finiteness."""
    values = [float(x) for x in vector]
    if len(values) != dims:
        raise ConfigurationError(
            f"the embedder returned {len(values)} dimensions, the collection's table has {dims}; "
            "use the embedder the table was created for"
        )
    if not all(math.isfinite(x) for x in values):
        raise ValueError("an embedding contains NaN or infinity; check the embedder")
    return "[" + ",".join(repr(x) for x in values) + "]"


@dataclass(frozen=True)
class StoredRow:
    document: dict[str, Any]
    checksum: str | None


@dataclass(frozen=True)
class SimilarRow:
    document: dict[str, Any]
    distance: float


def _dims_of(type_name: str) -> int | None:
    # format_type gives "vector(1536)" / "extensions.halfvec(3072)".
    head, _, rest = type_name.partition("(")
    digits = rest.rstrip(")")
    return int(digits) if digits.isdigit() and head.endswith(("vector", "halfvec")) else None


def _create_advice(prefix: str, collection: str, dims: int) -> str:
    """How to create a missing vector table: the CLI for Parlant's own vector stores."""
    if prefix in {vector_prefix(store) for store in VECTOR_COLLECTIONS}:
        return (
            f"run `parlant-supabase-sync sql --vectors {dims} > vectors.sql` and run that SQL "
            "(Supabase: Dashboard → SQL Editor)"
        )
    return f"run the SQL of vector_schema_sql({prefix!r}, {{{collection!r}: {dims}}})"


class SyncVectorCollection:
    """One vector collection's table: find, put, merge, delete, search (one request each)."""

    def __init__(self, database: SyncVectorDatabase, name: str, table: str, dims: int) -> None:
        self.database = database
        self.name = name
        self.table = table
        self.dims = dims

    def _call(self, operation: str, function: str, body: Mapping[str, Any]) -> dict[str, Any]:
        transport = self.database.transport
        answer = transport.send(
            operation,
            transport.rpc_request(function, body, table=self.table),
            table=self.table,
            function=function,
            expect=Expect.OBJECT,
        )
        data: dict[str, Any] = answer.data
        return data

    def find_rows(self, where: Mapping[str, Any], limit: int | None = None) -> list[StoredRow]:
        compiled = compile_filter(where)
        if compiled.nothing:
            return []
        body = {
            "p_table": self.table,
            "p_where": [condition.tree for condition in compiled.conditions],
            "p_limit": limit,
        }
        rows = self._call("vector_find", FIND_FUNCTION, body)["rows"]
        return [StoredRow(row["data"], row.get("checksum")) for row in rows]

    def find(self, where: Mapping[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
        return [row.document for row in self.find_rows(where, limit)]

    def put(self, document: Mapping[str, Any], checksum: str, embedding: Sequence[float]) -> None:
        """Insert (or replace) ``document`` with its embedding."""
        args = {
            "document": dict(document),
            "checksum": checksum,
            "embedding": embedding_text(embedding, self.dims),
        }
        self._call("vector_put", WRITE_FUNCTION, self._write("put", args))

    def merge(
        self,
        document_id: str,
        params: Mapping[str, Any],
        checksum: str | None = None,
        embedding: Sequence[float] | None = None,
    ) -> dict[str, Any] | None:
        """``data || params`` (and the new embedding if given); the updated document or None."""
        args: dict[str, Any] = {"id": document_id, "params": dict(params)}
        if embedding is not None:
            args["checksum"] = checksum
            args["embedding"] = embedding_text(embedding, self.dims)
        outcome = self._call("vector_merge", WRITE_FUNCTION, self._write("merge", args))
        document: dict[str, Any] | None = outcome.get("document")
        return document

    def delete(self, document_id: str) -> dict[str, Any] | None:
        outcome = self._call(
            "vector_delete", WRITE_FUNCTION, self._write("delete", {"id": document_id})
        )
        deleted: dict[str, Any] | None = outcome.get("deleted")
        return deleted

    def clear(self) -> int:
        outcome = self._call("vector_clear", WRITE_FUNCTION, self._write("clear", {}))
        return int(outcome.get("deleted", 0))

    def search(
        self, embedding: Sequence[float], k: int, where: Mapping[str, Any]
    ) -> list[SimilarRow]:
        """The ``k`` documents nearest to ``embedding`` (cosine distance, then id) matching
        ``where``: one request."""
        compiled = compile_filter(where)
        if compiled.nothing or k <= 0:
            return []
        body = {
            "p_table": self.table,
            "p_embedding": embedding_text(embedding, self.dims),
            "p_k": int(k),
            "p_where": [condition.tree for condition in compiled.conditions],
        }
        rows = self._call("vector_search", SEARCH_FUNCTION, body)["rows"]
        return [SimilarRow(row["data"], float(row["distance"])) for row in rows]

    def _write(self, operation: str, args: Mapping[str, Any]) -> dict[str, Any]:
        return {"p_table": self.table, "p_operation": operation, "p_args": dict(args)}


class SyncVectorDatabase:
    """The vector database ``table_prefix``: its collections' tables and its metadata table."""

    def __init__(
        self,
        settings: SupabaseSettings | None = None,
        *,
        table_prefix: str,
        transport: Transport | None = None,
    ) -> None:
        if transport is None:
            transport = Transport(settings if settings is not None else SupabaseSettings.from_env())
            self._owns_transport = True
        else:
            self._owns_transport = False
        self.transport = transport
        self.table_prefix = table_prefix
        self.metadata_table = metadata_table_name(table_prefix)

    def close(self) -> None:
        if self._owns_transport:
            self.transport.close()

    def table_for(self, name: str) -> str:
        return vector_table_name(self.table_prefix, name)

    def open_collection(self, name: str, dims: int) -> SyncVectorCollection:
        """The collection's table, checked (one request): it exists, is a vector table, and its
        embedding has ``dims`` dimensions. Tables are created by ``vector_schema_sql``."""
        table = self.table_for(name)
        column_type(dims)
        collection = SyncVectorCollection(self, name, table, dims)
        try:
            answer = collection._call(
                "vector_open", FIND_FUNCTION, {"p_table": table, "p_where": [], "p_limit": 0}
            )
        except TableMissing as error:
            raise ConfigurationError(
                f"the vector table {table} of collection {name!r} does not exist; "
                f"{_create_advice(self.table_prefix, name, dims)}"
            ) from error
        found = _dims_of(str(answer.get("type", "")))
        if found is not None and found != dims:
            raise ConfigurationError(
                f"vector table {table} holds {found}-dimension embeddings but the embedder of "
                f"collection {name!r} has {dims}; create a table for it with "
                "vector_schema_sql (another prefix) or use the embedder it was created for"
            )
        return collection

    # metadata ------------------------------------------------------------------------------

    def upsert_metadata(self, key: str, value: Any) -> None:
        t = self.transport
        builder = t.table(self.metadata_table).upsert({"key": key, "value": value})
        t.send("vector_metadata_upsert", builder, table=self.metadata_table)

    def remove_metadata(self, key: str) -> bool:
        t = self.transport
        builder = t.table(self.metadata_table).delete().eq("key", key)
        answer = t.send("vector_metadata_remove", builder, table=self.metadata_table)
        return bool(answer.data)

    def read_metadata(self) -> dict[str, Any]:
        t = self.transport
        builder = t.table(self.metadata_table).select("key,value").order("key")
        answer = t.send("vector_metadata_read", builder, table=self.metadata_table)
        return {row["key"]: row["value"] for row in answer.data}
