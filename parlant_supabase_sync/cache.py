"""A small, thread-safe TTL read cache for the ``metadata`` collections.

Parlant reads a store's ``metadata`` collection only while the store starts (the migration
check: ``find_one({})`` on enter, ``find({})`` on exit, then one ``update_one`` per document).
The synchronous core sends those reads through :class:`MetadataCache`, so a store that is
started again within the TTL (tests, short-lived workers, several stores of one app) does not
repeat them.

Consistency rules:

* Entries are keyed by (database identity, table, read). The database identity is the project
  URL plus the schema (:meth:`MetadataCache.database_key`), so two namespaces, two schemas or two
  projects never share an entry.
* Write-through invalidation: every ``insert_one``/``update_one``/``delete_one`` on a metadata
  table runs inside :meth:`MetadataCache.writing`, which drops that table's entries before and
  after the write (also when the write fails, because a failed request may still have been
  applied). A read that was already in flight when a write ended is not stored. Within one
  process, a read after a write therefore always sees the write.
* Several processes sharing one database: a process sees another process's metadata write at
  most ``ttl`` seconds late. In practice this matters only for migrations: after one process
  migrates a store (``allow_migration=True`` writes the new version), another process that read
  the old version less than ``ttl`` seconds earlier may start that store once more on the old
  version without raising ``MigrationRequired``/``ServerOutdated``. Run migrations with the other
  processes stopped (or wait ``ttl`` seconds before starting them), or set the TTL to 0, which
  disables the cache.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from cachetools import TTLCache

__all__ = ["CacheStats", "MetadataCache"]

T = TypeVar("T")

DEFAULT_TTL_SECONDS = 60.0
DEFAULT_MAXSIZE = 512

_Key = tuple[Hashable, str, Hashable]
_Table = tuple[Hashable, str]


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of the cache counters."""

    hits: int
    misses: int
    size: int


class MetadataCache:
    """A TTL cache for metadata reads, shared by every database of one application.

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
        self._entries: TTLCache[_Key, Any] = TTLCache(
            maxsize=maxsize, ttl=max(self._ttl, 0.0), timer=timer
        )
        self._lock = threading.Lock()
        # Bumped by every write; a load only stores its result if no write happened meanwhile.
        self._generations: dict[_Table, int] = {}
        self._epoch = 0  # bumped by clear()
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
            return CacheStats(self._hits, self._misses, len(self._entries))

    def get_or_load(
        self, database: Hashable, table: str, read: Hashable, load: Callable[[], T]
    ) -> T:
        """Return the cached result of ``read`` on ``table``, or call ``load`` and cache it.

        ``read`` identifies the query (e.g. the method and its encoded arguments). ``load`` runs
        without the lock held. Results are deep-copied in and out, so callers may mutate them.
        """
        key: _Key = (database, table, read)
        with self._lock:
            if self.enabled:
                try:
                    cached = self._entries[key]
                except KeyError:
                    pass
                else:
                    self._hits += 1
                    return copy.deepcopy(cached)  # type: ignore[no-any-return]
            self._misses += 1
            generation = (self._epoch, self._generations.get((database, table), 0))
        value = load()
        if self.enabled:
            stored = copy.deepcopy(value)
            with self._lock:
                if (self._epoch, self._generations.get((database, table), 0)) == generation:
                    self._entries[key] = stored
        return value

    def invalidate(self, database: Hashable, table: str) -> None:
        """Drop every entry of ``table`` and discard reads of it that are still in flight."""
        with self._lock:
            self._invalidate_locked((database, table))

    @contextmanager
    def writing(self, database: Hashable, table: str) -> Iterator[None]:
        """Wrap a write to ``table``: invalidates before and after it, even if it raises."""
        self.invalidate(database, table)
        try:
            yield
        finally:
            self.invalidate(database, table)

    def clear(self) -> None:
        """Drop every entry (the counters are kept)."""
        with self._lock:
            self._epoch += 1
            self._entries.clear()

    def _invalidate_locked(self, table: _Table) -> None:
        self._generations[table] = self._generations.get(table, 0) + 1
        for key in [k for k in self._entries if (k[0], k[1]) == table]:
            # TTLCache.__delitem__ raises KeyError for an entry that has just expired.
            self._entries.pop(key, None)

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"MetadataCache(ttl={self._ttl:g}, size={stats.size}, "
            f"hits={stats.hits}, misses={stats.misses})"
        )
