"""The async facade: Parlant's interface, one thread hop, both anyio backends, cancellation."""

from __future__ import annotations

import ast
import inspect
import logging
import secrets
import textwrap
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
import anyio.lowlevel
import httpx
import pytest
from facade_helpers import FACADE_PREFIX, RecordingLogger, no_new_busy_threads
from parlant.core.common import Version
from parlant.core.persistence.common import ObjectId, SortDirection
from parlant.core.persistence.document_database import (
    BaseDocument,
    DocumentCollection,
    DocumentDatabase,
    identity_loader_for,
)

from parlant_supabase_sync import ddl, facade
from parlant_supabase_sync.errors import ConfigurationError
from parlant_supabase_sync.facade import (
    SupabaseDocumentCollection,
    SupabaseDocumentDatabase,
)
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.transport import build_http_client

if TYPE_CHECKING:
    from parlant_supabase_sync.local import LocalSupabase

pytestmark = pytest.mark.anyio


class Doc(TypedDict, total=False):
    id: ObjectId
    version: Version.String
    creation_utc: str
    a: int
    b: int
    n: int


def doc(i: int, **fields: Any) -> Doc:
    return Doc(
        id=ObjectId(f"d{i:04d}"),
        version=Version.String("1.0.0"),
        creation_utc=f"2026-01-01T00:00:{i % 60:02d}.{i:06d}+00:00",
        **{"a": 0, "b": 0, "n": i, **fields},  # type: ignore[typeddict-item]
    )


@pytest.fixture
async def database(
    settings: SupabaseSettings,
) -> AsyncIterator[SupabaseDocumentDatabase]:
    async with SupabaseDocumentDatabase(RecordingLogger(), FACADE_PREFIX, settings) as db:
        yield db


# --- shape -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, base",
    [
        (SupabaseDocumentDatabase, DocumentDatabase),
        (SupabaseDocumentCollection, DocumentCollection),
    ],
)
def test_every_interface_method_is_implemented_and_marked_override(cls: type, base: type) -> None:
    assert not getattr(cls, "__abstractmethods__", frozenset())
    for name in base.__abstractmethods__:
        method = getattr(cls, name)
        assert method is not getattr(base, name), name
        assert getattr(method, "__override__", False), f"{cls.__name__}.{name} lacks @override"


def test_the_facade_crosses_threads_in_exactly_one_place_and_methods_are_one_liners() -> None:
    tree = ast.parse(inspect.getsource(facade))
    crossings = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "run_sync"
    ]
    assert len(crossings) == 1
    for cls in (SupabaseDocumentDatabase, SupabaseDocumentCollection):
        for name in (
            "find",
            "find_one",
            "insert_one",
            "update_one",
            "delete_one",
            "ensure_indexes",
            "create_collection",
            "get_collection",
            "get_or_create_collection",
            "delete_collection",
        ):
            if not hasattr(cls, name):
                continue
            function = ast.parse(textwrap.dedent(inspect.getsource(getattr(cls, name)))).body[0]
            assert isinstance(function, ast.AsyncFunctionDef)
            assert len(function.body) == 1, f"{cls.__name__}.{name} has logic beyond the hop"


def test_find_one_accepts_sort_as_parlant_3_3_requires() -> None:
    assert "sort" in inspect.signature(SupabaseDocumentCollection.find_one).parameters


# --- behaviour through the hop ---------------------------------------------------------------


async def test_aenter_returns_the_database_itself(settings: SupabaseSettings) -> None:
    db = SupabaseDocumentDatabase(RecordingLogger(), FACADE_PREFIX, settings)
    async with db as entered:
        assert entered is db


async def test_documents_round_trip_through_the_worker_thread(
    database: SupabaseDocumentDatabase,
) -> None:
    docs = await database.get_or_create_collection("docs", Doc, identity_loader_for(Doc))
    assert isinstance(docs, SupabaseDocumentCollection)
    await docs.ensure_indexes([])
    for i in range(12):
        assert (await docs.insert_one(doc(i, n=i, a=0))).acknowledged
    found = await docs.find({"n": {"$gte": 10}})
    assert [d["n"] for d in found.items] == [10, 11]
    page = await docs.find({}, limit=5, sort_direction=SortDirection.DESC)
    assert [d["n"] for d in page.items] == [11, 10, 9, 8, 7] and page.has_more
    top = await docs.find_one({}, sort=[("n", SortDirection.DESC)])
    assert top is not None and top["n"] == 11
    updated = await docs.update_one({"id": {"$eq": "d0003"}}, Doc(a=5))
    assert updated.matched_count == 1 and updated.updated_document is not None
    assert updated.updated_document["a"] == 5 and updated.updated_document["n"] == 3
    deleted = await docs.delete_one({"id": {"$eq": "d0004"}})
    assert deleted.deleted_count == 1 and deleted.deleted_document is not None
    assert (await docs.find_one({"id": {"$eq": "d0004"}})) is None


async def test_document_loader_coroutine_runs_on_the_event_loop_thread(
    supabase: LocalSupabase, settings: SupabaseSettings
) -> None:
    # The core runs a collection's loader once per process and table: use tables of our own.
    prefix = f"pss_load_{secrets.token_hex(4)}_"
    supabase.execute_sql(ddl.generate_schema({prefix: ("docs", "metadata")}))
    async with SupabaseDocumentDatabase(RecordingLogger(), prefix, settings) as db:
        docs = await db.create_collection("docs", Doc)
        for i in range(3):
            await docs.insert_one(doc(i))
    loop_thread = threading.get_ident()
    seen_threads: set[int] = set()

    async def loader(document: BaseDocument) -> Doc | None:
        seen_threads.add(threading.get_ident())
        await anyio.lowlevel.checkpoint()  # a real await: only possible on the event loop
        return Doc(**{**document, "n": 100})  # type: ignore[typeddict-item]

    async with SupabaseDocumentDatabase(RecordingLogger(), prefix, settings) as fresh:
        migrated = await fresh.get_or_create_collection("docs", Doc, loader)
        assert seen_threads == {loop_thread}
        assert [d["n"] for d in await migrated.find({})] == [100, 100, 100]


async def test_limiter_defaults_to_max_workers_and_can_be_shared(
    settings: SupabaseSettings,
) -> None:
    own = SupabaseDocumentDatabase(RecordingLogger(), FACADE_PREFIX, settings)
    assert own.limiter.total_tokens == settings.max_workers
    shared = anyio.CapacityLimiter(2)
    client = build_http_client(settings)
    try:
        a = SupabaseDocumentDatabase(
            RecordingLogger(),
            FACADE_PREFIX,
            settings,
            http_client=client,
            limiter=shared,
        )
        b = SupabaseDocumentDatabase(
            RecordingLogger(),
            "parlant_sessions_",
            settings,
            http_client=client,
            limiter=shared,
        )
        async with a, b:
            assert a.limiter is b.limiter is shared
        # Neither database owned the client, so neither closed it.
        assert not client.is_closed
    finally:
        client.close()
    async with own:
        pass


async def test_a_limiter_larger_than_the_http_pool_is_refused(
    settings: SupabaseSettings,
) -> None:
    pool = settings.http_pool_size
    with pytest.raises(ConfigurationError, match=rf"{pool} connections.*CapacityLimiter\({pool}\)"):
        SupabaseDocumentDatabase(
            RecordingLogger(), FACADE_PREFIX, settings, limiter=anyio.CapacityLimiter(pool + 1)
        )
    client = httpx.Client(limits=httpx.Limits(max_connections=2))
    try:
        with pytest.raises(ConfigurationError, match="max_connections=3"):
            SupabaseDocumentDatabase(
                RecordingLogger(),
                FACADE_PREFIX,
                settings,
                http_client=client,
                limiter=anyio.CapacityLimiter(3),
            )
        assert not client.is_closed  # the caller's client is the caller's to close
        async with SupabaseDocumentDatabase(
            RecordingLogger(),
            FACADE_PREFIX,
            settings,
            http_client=client,
            limiter=anyio.CapacityLimiter(2),
        ):
            pass
    finally:
        client.close()


async def test_at_most_max_workers_calls_run_at_once(
    settings: SupabaseSettings,
) -> None:
    limiter = anyio.CapacityLimiter(3)
    async with SupabaseDocumentDatabase(
        RecordingLogger(), FACADE_PREFIX, settings, limiter=limiter
    ) as db:
        docs = await db.get_or_create_collection("docs", Doc, identity_loader_for(Doc))
        peak = 0

        async def one(i: int) -> None:
            nonlocal peak
            peak = max(peak, int(limiter.borrowed_tokens))
            await docs.insert_one(doc(i, n=i))
            peak = max(peak, int(limiter.borrowed_tokens))

        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(one, i)
        assert 1 <= peak <= 3
        assert (await docs.find({})).total_count == 40


async def test_core_log_records_reach_the_parlant_logger() -> None:
    parlant_logger = RecordingLogger()
    adapted = facade._stdlib_logger(parlant_logger)
    adapted.debug("d")
    adapted.info("i")
    adapted.warning("w %s", "x")
    adapted.error("e")
    assert parlant_logger.messages == [
        ("debug", "d"),
        ("info", "i"),
        ("warning", "w x"),
        ("error", "e"),
    ]
    stdlib = logging.getLogger("some.app")
    assert facade._stdlib_logger(stdlib) is stdlib


# --- cancellation and clean exit -------------------------------------------------------------


async def test_cancelled_updates_are_all_or_nothing_and_leak_no_token_or_thread(
    settings: SupabaseSettings,
) -> None:
    count = 300
    client = build_http_client(settings)
    limiter = anyio.CapacityLimiter(4)
    try:
        with no_new_busy_threads():
            async with SupabaseDocumentDatabase(
                RecordingLogger(),
                FACADE_PREFIX,
                settings,
                http_client=client,
                limiter=limiter,
            ) as db:
                docs = await db.get_or_create_collection("docs", Doc, identity_loader_for(Doc))
                for i in range(count):
                    await docs.insert_one(doc(i, n=i, a=0, b=0))
                completed = 0

                async def update(i: int, scope: anyio.CancelScope) -> None:
                    nonlocal completed
                    await docs.update_one({"id": {"$eq": f"d{i:04d}"}}, Doc(a=1, b=1))
                    completed += 1
                    if completed == 20:
                        scope.cancel()

                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:
                        for i in range(count):
                            tg.start_soon(update, i, scope)
                assert scope.cancelled_caught
                # to_thread.run_sync waited for every started call: nothing is borrowed.
                assert limiter.borrowed_tokens == 0
                result = await docs.find({})
                states = [(d["a"], d["b"]) for d in result.items]
                assert len(states) == count
                assert set(states) <= {(0, 0), (1, 1)}
                updated = states.count((1, 1))
                assert 20 <= updated < count
                # Cancellation stops new work promptly: besides the calls in flight (one per
                # token), a waiter already handed a released token may still start its call
                # before it reaches a checkpoint (seen on trio).
                assert updated <= 20 + 2 * limiter.total_tokens
            assert limiter.borrowed_tokens == 0
            pool = client._transport._pool  # type: ignore[attr-defined]
            assert all(connection.is_idle() for connection in pool.connections)
    finally:
        client.close()
    assert client._transport._pool.connections == []  # type: ignore[attr-defined]


async def test_exit_closes_the_http_client_the_database_created(
    settings: SupabaseSettings,
) -> None:
    with no_new_busy_threads():
        async with SupabaseDocumentDatabase(RecordingLogger(), FACADE_PREFIX, settings) as db:
            docs = await db.get_or_create_collection("docs", Doc, identity_loader_for(Doc))
            await docs.insert_one(doc(1, n=1))
            client: httpx.Client = db.core.transport.http
            assert not client.is_closed
        assert client.is_closed
        assert client._transport._pool.connections == []  # type: ignore[attr-defined]
        assert db.limiter.borrowed_tokens == 0


async def test_exit_still_closes_when_the_owner_is_cancelled(
    settings: SupabaseSettings,
) -> None:
    db = SupabaseDocumentDatabase(RecordingLogger(), FACADE_PREFIX, settings)
    with anyio.CancelScope() as scope:
        async with db:
            scope.cancel()
            await anyio.sleep(1)
    assert db.core.transport.http.is_closed
