"""MetadataCache on its own: TTL, invalidation, counters, thread safety (no server needed)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from parlant_supabase_sync.cache import MetadataCache

DB = MetadataCache.database_key("http://127.0.0.1:1/", "public")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counting_loader(value: Any) -> tuple[Callable[[], Any], list[int]]:
    calls = [0]

    def load() -> Any:
        calls[0] += 1
        return value

    return load, calls


def test_database_key_ignores_trailing_slash_and_includes_schema() -> None:
    assert MetadataCache.database_key("http://x/", "public") == MetadataCache.database_key(
        "http://x", "public"
    )
    assert MetadataCache.database_key("http://x", "public") != MetadataCache.database_key(
        "http://x", "other"
    )


def test_second_read_within_ttl_is_a_hit_and_does_not_load() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    load, calls = counting_loader([{"id": "m", "version": "0.9.0"}])
    assert cache.get_or_load(DB, "t_metadata", "find", load) == [{"id": "m", "version": "0.9.0"}]
    assert cache.get_or_load(DB, "t_metadata", "find", load) == [{"id": "m", "version": "0.9.0"}]
    assert calls == [1]
    assert (cache.hits, cache.misses) == (1, 1)


def test_entry_expires_after_ttl() -> None:
    clock = FakeClock()
    cache = MetadataCache(ttl=30, timer=clock)
    load, calls = counting_loader({"v": 1})
    cache.get_or_load(DB, "t", "r", load)
    clock.now += 29.9
    cache.get_or_load(DB, "t", "r", load)
    assert calls == [1]
    clock.now += 0.2
    cache.get_or_load(DB, "t", "r", load)
    assert calls == [2]
    assert cache.stats().hits == 1 and cache.stats().misses == 2


def test_zero_ttl_disables_caching() -> None:
    cache = MetadataCache(ttl=0, timer=FakeClock())
    load, calls = counting_loader(1)
    for _ in range(3):
        cache.get_or_load(DB, "t", "r", load)
    assert calls == [3]
    assert not cache.enabled
    assert cache.stats().size == 0 and cache.hits == 0 and cache.misses == 3


def test_write_invalidates_only_that_table_of_that_database() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    other_db = MetadataCache.database_key("http://other", "public")
    loads = {name: counting_loader(name) for name in ("a", "b", "c")}
    cache.get_or_load(DB, "a_metadata", "find", loads["a"][0])
    cache.get_or_load(DB, "b_metadata", "find", loads["b"][0])
    cache.get_or_load(other_db, "a_metadata", "find", loads["c"][0])
    with cache.writing(DB, "a_metadata"):
        pass
    cache.get_or_load(DB, "a_metadata", "find", loads["a"][0])
    cache.get_or_load(DB, "b_metadata", "find", loads["b"][0])
    cache.get_or_load(other_db, "a_metadata", "find", loads["c"][0])
    assert [loads[n][1][0] for n in "abc"] == [2, 1, 1]


def test_failed_write_still_invalidates() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    load, calls = counting_loader(1)
    cache.get_or_load(DB, "t", "r", load)
    try:
        with cache.writing(DB, "t"):
            raise TimeoutError("the request may have been applied")
    except TimeoutError:
        pass
    cache.get_or_load(DB, "t", "r", load)
    assert calls == [2]


def test_read_in_flight_during_a_write_is_not_stored() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())

    def stale_load() -> str:
        # A write completes while this read is on the wire.
        with cache.writing(DB, "t"):
            pass
        return "stale"

    assert cache.get_or_load(DB, "t", "r", stale_load) == "stale"
    load, calls = counting_loader("fresh")
    assert cache.get_or_load(DB, "t", "r", load) == "fresh"
    assert calls == [1]


def test_cached_values_are_copies() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    first = cache.get_or_load(DB, "t", "r", lambda: [{"version": "1"}])
    first[0]["version"] = "mutated"
    assert cache.get_or_load(DB, "t", "r", lambda: [{"version": "x"}]) == [{"version": "1"}]


def test_clear_drops_entries_and_in_flight_reads() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())

    def load_then_clear() -> int:
        cache.clear()
        return 1

    cache.get_or_load(DB, "t", "r", load_then_clear)
    assert cache.stats().size == 0


def test_concurrent_threads_keep_counters_exact() -> None:
    cache = MetadataCache(ttl=30, timer=FakeClock())
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for j in range(200):
                table = f"t{j % 4}"
                if j % 50 == 0:
                    with cache.writing(DB, table):
                        pass
                value = cache.get_or_load(DB, table, "find", lambda t=table: [t])
                assert value == [table]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cache.hits + cache.misses == 16 * 200
    assert cache.misses >= 4


def test_repr_shows_counters_only() -> None:
    cache = MetadataCache(ttl=5, timer=FakeClock())
    cache.get_or_load(DB, "t", "r", lambda: "secret-value")
    assert "secret-value" not in repr(cache)
    assert "misses=1" in repr(cache)
