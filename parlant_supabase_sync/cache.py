"""A small, thread-safe, write-through TTL cache for the ``metadata`` collections.

Parlant touches a store's ``metadata`` collection only while the store starts (the migration
check): ``find_one({})`` on enter, then ``find({})`` and one ``update_one({"id": …},
{"version": …})`` per document on exit. The synchronous core serves those unfiltered reads from
:class:`MetadataCache`, which holds a *snapshot* of each metadata table (all its documents in
``(creation_utc, id)`` order), and reports its own writes to it, so the cached snapshot stays
equal to the table. A store started again within the TTL (another store of the same app, a
restart in tests, a short-lived worker) sends no metadata read.

How the core uses it::

    docs = cache.documents(db_key, table, load_all)        # unfiltered read: hit, or load_all()
    with cache.writing(db_key, table) as write:             # around every metadata write
        result = <request>
        write.replaced(old_id, result.updated_document)     # or write.inserted(doc) / write.deleted(id)

Consistency rules:

* Entries are keyed by (database identity, table). The database identity is the project URL
  plus the schema (:meth:`MetadataCache.database_key`), so two namespaces, schemas or projects
  never share an entry.
* Write-through: a write that completes and reports its effect updates the snapshot. A write
  that raises (it may still have been applied), reports nothing, or overlaps another write to the
  same table drops the snapshot instead. A read that was in flight while a write happened is not
  stored. Within one process a read after a write therefore always sees the write.
* Several processes sharing one database: a process sees another process's metadata write at
  most ``ttl`` seconds late. This matters only for migrations: after one process migrates a store
  (``allow_migration=True`` writes the new version), another process that read the old version
  less than ``ttl`` seconds earlier may start that store once more without raising
  ``MigrationRequired``/``ServerOutdated``. Run migrations with the other processes stopped (or
  wait ``ttl`` seconds before starting them), or set the TTL to 0, which disables the cache.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from .settings import DEFAULT_METADATA_CACHE_TTL

__all__ = ["CacheStats", "MetadataCache", "MetadataWrite"]

DEFAULT_TTL_SECONDS = DEFAULT_METADATA_CACHE_TTL
DEFAULT_MAXSIZE = 512

Document = dict[str, Any]
_Key = tuple[Hashable, str]


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of the cache counters."""

    hits: int
    misses: int
    size: int


class MetadataWrite:
    """Collects the effect of one write; see :meth:`MetadataCache.writing`."""

    def __init__(self) -> None:
        self._changes: list[tuple[str | None, Document | None]] = []

    def inserted(self, document: Document) -> None:
        """The write inserted ``document``."""
        self._changes.append((None, copy.deepcopy(document)))

    def replaced(self, old_id: str, document: Document | None) -> None:
        """The document whose id was ``old_id`` is now ``document`` (``None``: nothing matched)."""
        if document is not None:
            self._changes.append((old_id, copy.deepcopy(document)))

    def deleted(self, document_id: str) -> None:
        """The document ``document_id`` was deleted."""
        self._changes.append((document_id, None))

    def unchanged(self) -> None:
        """The write changed nothing (e.g. ``update_one`` matched no document, no upsert)."""
        self._changes.append((None, None))


class MetadataCache:
    """Snapshots of metadata tables, shared by every database of one application.

    ``ttl`` is in seconds; 0 (or less) disables caching (every read goes to the server and
    counts as a miss). ``timer`` is the clock (``time.monotonic`` by default; tests inject one).
    """

    def __init__(
        self,
        ttl: float = DEFAULT_TTL_SECONDS,
        *,
        maxsize: int = DEFAULT_MAXSIZE,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = float(ttl)
        self._snapshots: TTLCache[_Key, list[Document]] = TTLCache(
            maxsize=maxsize, ttl=max(self._ttl, 0.0), timer=timer
        )
        self._lock = threading.Lock()
        # Bumped by every write and by clear(): a load stores its result only if neither happened.
        self._generations: dict[_Key, int] = {}
        self._writers: dict[_Key, int] = {}
        self._epoch = 0
        self._hits = 0
        self._misses = 0

    @staticmethod
    def database_key(url: str, schema: str) -> str:
        """The database identity used in cache keys: the project URL and the schema."""
        return f"{url.rstrip('/')}#{schema}"

    @property
    def ttl(self) -> float:
        return self._ttl

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    @property
    def hits(self) -> int:
        with self._lock:
            return self._hits

    @property
    def misses(self) -> int:
        with self._lock:
            return self._misses

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._snapshots))

    def documents(
        self, database: Hashable, table: str, load: Callable[[], list[Document]]
    ) -> list[Document]:
        """Every document of ``table`` in ``(creation_utc, id)`` order, cached or from ``load()``.

        ``load`` must return the whole table in that order; it runs without the lock held.
        The result is a copy the caller may mutate.
        """
        key: _Key = (database, table)
        with self._lock:
            if self.enabled:
                cached = self._snapshots.get(key)
                if cached is not None:
                    self._hits += 1
                    return copy.deepcopy(cached)
            self._misses += 1
            version = self._version(key)
        loaded = load()
        if self.enabled:
            snapshot = copy.deepcopy(loaded)
            with self._lock:
                if self._version(key) == version and not self._writers.get(key):
                    self._snapshots[key] = snapshot
        return loaded

    @contextmanager
    def writing(self, database: Hashable, table: str) -> Iterator[MetadataWrite]:
        """Wrap one write to ``table`` and report its effect on the yielded object.

        If the block raises, reports nothing, or another write to the table overlaps it, the
        snapshot is dropped rather than patched.
        """
        key: _Key = (database, table)
        write = MetadataWrite()
        with self._lock:
            self._bump(key)
            self._writers[key] = self._writers.get(key, 0) + 1
            version = self._version(key)
        applied = False
        try:
            yield write
            applied = True
        finally:
            with self._lock:
                self._writers[key] -= 1
                if not self._writers[key]:
                    del self._writers[key]
                overlapped = self._version(key) != version
                self._bump(key)
                snapshot = self._snapshots.get(key)
                if snapshot is not None:
                    if applied and not overlapped and write._changes:
                        self._snapshots[key] = _apply(snapshot, write._changes)
                    else:
                        self._snapshots.pop(key, None)

    def invalidate(self, database: Hashable, table: str) -> None:
        """Drop the snapshot of ``table`` and discard reads of it that are still in flight."""
        with self._lock:
            self._bump((database, table))
            self._snapshots.pop((database, table), None)

    def clear(self) -> None:
        """Drop every snapshot (the counters are kept)."""
        with self._lock:
            self._epoch += 1
            self._snapshots.clear()

    def _version(self, key: _Key) -> tuple[int, int]:
        return (self._epoch, self._generations.get(key, 0))

    def _bump(self, key: _Key) -> None:
        self._generations[key] = self._generations.get(key, 0) + 1

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"MetadataCache(ttl={self._ttl:g}, size={stats.size}, "
            f"hits={stats.hits}, misses={stats.misses})"
        )


def _apply(
    snapshot: list[Document], changes: list[tuple[str | None, Document | None]]
) -> list[Document]:
    documents = list(snapshot)
    for old_id, document in changes:
        if old_id is not None:
            documents = [d for d in documents if d.get("id") != old_id]
        if document is not None:
            documents = [d for d in documents if d.get("id") != document.get("id")]
            documents.append(document)
    documents.sort(key=_order_key)
    return documents


def _order_key(document: Document) -> tuple[int, str, int, str]:
    # The server's order: (creation_utc, id) with COLLATE "C" (code points), NULLs last.
    created, doc_id = document.get("creation_utc"), document.get("id")
    return (
        0 if isinstance(created, str) else 1,
        created if isinstance(created, str) else "",
        0 if isinstance(doc_id, str) else 1,
        doc_id if isinstance(doc_id, str) else "",
    )
