"""MetadataCache on its own: TTL, write-through, invalidation, counters, thread safety."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from parlant_supabase_sync.cache import MetadataCache

DB = MetadataCache.database_key("http://127.0.0.1:1/", "public")
Doc = dict[str, Any]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Table:
    """The server side of one table, counting reads."""

    def __init__(self, *docs: Doc) -> None:
        self.docs = list(docs)
        self.reads = 0

    def load(self) -> list[Doc]:
        self.reads += 1
        return [dict(d) for d in self.docs]


def meta(
    doc_id: str, version: str = "0.9.0", created: str = "2026-01-01T00:00:00+00:00"
) -> Doc:
    return {"id": doc_id, "creation_utc": created, "version": version}


def test_database_key_ignores_trailing_slash_and_includes_schema() -> None:
    key = MetadataCache.database_key
    assert key("http://x/", "public") == key("http://x", "public")
    assert key("http://x", "public") != key("http://x", "other")


def test_second_read_within_ttl_is_a_hit_and_does_not_load() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    table = Table(meta("m"))
    assert cache.documents(DB, "t_metadata", table.load) == [meta("m")]
    assert cache.documents(DB, "t_metadata", table.load) == [meta("m")]
    assert table.reads == 1
    assert (cache.hits, cache.misses) == (1, 1)


def test_snapshot_expires_after_ttl() -> None:
    clock = FakeClock()
    cache = MetadataCache(ttl=30, timer=clock)
    table = Table(meta("m"))
    cache.documents(DB, "t", table.load)
    clock.now += 29.9
    cache.documents(DB, "t", table.load)
    assert table.reads == 1
    clock.now += 0.2
    cache.documents(DB, "t", table.load)
    assert table.reads == 2
    assert cache.stats() == type(cache.stats())(hits=1, misses=2, size=1)


def test_zero_ttl_disables_caching() -> None:
    cache = MetadataCache(ttl=0, timer=FakeClock())
    table = Table(meta("m"))
    for _ in range(3):
        cache.documents(DB, "t", table.load)
    assert table.reads == 3
    assert not cache.enabled
    assert (cache.stats().size, cache.hits, cache.misses) == (0, 0, 3)


def test_reported_update_is_written_through_and_visible_without_a_read() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    table = Table(meta("m", "0.8.0"))
    cache.documents(DB, "t", table.load)
    with cache.writing(DB, "t") as write:
        table.docs[0]["version"] = "0.9.0"
        write.replaced("m", table.docs[0])
    assert cache.documents(DB, "t", table.load) == [meta("m", "0.9.0")]
    assert table.reads == 1


def test_insert_and_delete_keep_server_order() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    table = Table(meta("b", created="2026-01-02T00:00:00+00:00"))
    cache.documents(DB, "t", table.load)
    with cache.writing(DB, "t") as write:
        write.inserted(meta("a", created="2026-01-01T00:00:00+00:00"))
    with cache.writing(DB, "t") as write:
        write.inserted(meta("c", created="2026-01-02T00:00:00+00:00"))
    assert [d["id"] for d in cache.documents(DB, "t", table.load)] == ["a", "b", "c"]
    with cache.writing(DB, "t") as write:
        write.deleted("b")
    assert [d["id"] for d in cache.documents(DB, "t", table.load)] == ["a", "c"]
    assert table.reads == 1


def test_update_that_changes_the_id_replaces_the_old_document() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    table = Table(meta("old"))
    cache.documents(DB, "t", table.load)
    with cache.writing(DB, "t") as write:
        write.replaced("old", meta("new"))
    assert cache.documents(DB, "t", table.load) == [meta("new")]


def test_write_that_reports_nothing_drops_the_snapshot() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    table = Table(meta("m"))
    cache.documents(DB, "t", table.load)
    with cache.writing(DB, "t"):
        pass
    cache.documents(DB, "t", table.load)
    assert table.reads == 2


def test_failed_write_drops_the_snapshot() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    table = Table(meta("m"))
    cache.documents(DB, "t", table.load)
    with pytest.raises(TimeoutError), cache.writing(DB, "t") as write:
        write.replaced("m", meta("m", "1.0.0"))
        raise TimeoutError("the request may or may not have been applied")
    cache.documents(DB, "t", table.load)
    assert table.reads == 2


def test_overlapping_writes_drop_the_snapshot() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    table = Table(meta("m"))
    cache.documents(DB, "t", table.load)
    with cache.writing(DB, "t") as first:
        with cache.writing(DB, "t") as second:
            second.replaced("m", meta("m", "2"))
        first.replaced("m", meta("m", "1"))
    cache.documents(DB, "t", table.load)
    assert table.reads == 2


def test_writes_touch_only_their_own_table_and_database() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    other_db = MetadataCache.database_key("http://other", "public")
    tables = {name: Table(meta(name)) for name in ("a", "b", "c")}
    cache.documents(DB, "a_metadata", tables["a"].load)
    cache.documents(DB, "b_metadata", tables["b"].load)
    cache.documents(other_db, "a_metadata", tables["c"].load)
    cache.invalidate(DB, "a_metadata")
    cache.documents(DB, "a_metadata", tables["a"].load)
    cache.documents(DB, "b_metadata", tables["b"].load)
    cache.documents(other_db, "a_metadata", tables["c"].load)
    assert [tables[n].reads for n in "abc"] == [2, 1, 1]


def test_read_in_flight_during_a_write_is_not_stored() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    table = Table(meta("m", "old"))

    def load_racing_a_write() -> list[Doc]:
        stale = table.load()
        with cache.writing(DB, "t") as write:
            table.docs[0]["version"] = "new"
            write.replaced("m", table.docs[0])
        return stale

    assert cache.documents(DB, "t", load_racing_a_write)[0]["version"] == "old"
    assert cache.documents(DB, "t", table.load)[0]["version"] == "new"


def test_cached_documents_are_copies() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    table = Table(meta("m"))
    first = cache.documents(DB, "t", table.load)
    first[0]["version"] = "mutated"
    assert cache.documents(DB, "t", table.load) == [meta("m")]


def test_clear_drops_snapshots_and_in_flight_reads() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())

    def load_then_clear() -> list[Doc]:
        cache.clear()
        return [meta("m")]

    cache.documents(DB, "t", load_then_clear)
    assert cache.stats().size == 0


def test_concurrent_threads_never_see_a_lost_write() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    lock = threading.Lock()
    server: dict[str, list[Doc]] = {f"t{i}": [meta("m", "0")] for i in range(4)}
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def loader(name: str) -> Callable[[], list[Doc]]:
        def load() -> list[Doc]:
            with lock:
                return [dict(d) for d in server[name]]

        return load

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for j in range(150):
                name = f"t{j % 4}"
                if j % 10 == n % 10:
                    with cache.writing(DB, name) as write, lock:
                        doc = dict(
                            server[name][0],
                            version=str(int(server[name][0]["version"]) + 1),
                        )
                        server[name] = [doc]
                        write.replaced("m", doc)
                    # A read after our own write never returns an older version.
                    seen = cache.documents(DB, name, loader(name))[0]["version"]
                    assert int(seen) >= int(doc["version"])
                else:
                    cache.documents(DB, name, loader(name))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cache.hits + cache.misses == 8 * 150
    for name, docs in server.items():
        assert cache.documents(DB, name, loader(name)) == docs


def test_repr_shows_counters_only() -> None:
    cache = MetadataCache(ttl=5, timer=FakeClock())
    cache.documents(DB, "t", lambda: [{"id": "secret-value"}])
    assert "secret-value" not in repr(cache)
    assert "misses=1" in repr(cache)
