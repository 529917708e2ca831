"""A seeded mixed workload through the async facade, checked against PostgreSQL read directly.

Shared by tests/faults/test_chaos.py and benchmarks/chaos.py. Each worker owns a disjoint set of
documents (its ``worker`` field) and keeps a model of what must be true of them. Every answer is
compared with the model; every acknowledged write is checked in PostgreSQL (psycopg, the
stand-in's superuser DSN) right after it returns; a write that fails with a typed error is
resolved there too: the row must be as before or as after the write, never anything else.

Categories (all must stay 0, except ``typed_errors``):

* ``lost_writes``: an acknowledged write that PostgreSQL does not show (missing insert/upsert,
  stale update, a deleted document still present), or a document missing at the end;
* ``duplicates``: a document in PostgreSQL the model says was never written, or two documents
  with one logical key;
* ``wrong_results``: an answer that differs from the model (documents, counts, matched/deleted
  counts, cursors), a write applied in a way that is neither "before" nor "after", or a typed
  error that claims something false for valid input (``DuplicateDocument`` for a fresh id,
  ``TableMissing``, ``PermissionDenied``, …);
* ``untyped_errors``: an exception that is not a ``SupabaseSyncError``;
* ``hangs``: an operation that did not finish within ``op_timeout``.

``typed_errors`` counts operations that raised a typed (transient or generic request) error
after the adapter's retries ran out; they are allowed, and their writes are resolved as above.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import anyio
import psycopg
from parlant.core.persistence.common import Cursor, ObjectId
from parlant.core.persistence.document_database import (
    BaseDocument,
    DeleteResult,
    FindResult,
    InsertResult,
    UpdateResult,
)
from psycopg import sql

from parlant_supabase_sync.errors import (
    AuthenticationError,
    ConfigurationError,
    DuplicateDocument,
    InvalidDocument,
    PermissionDenied,
    SchemaMissing,
    SupabaseSyncError,
    UnsupportedFilter,
)
from parlant_supabase_sync.facade import SupabaseDocumentCollection, SupabaseDocumentDatabase
from parlant_supabase_sync.settings import SupabaseSettings

# Typed errors whose meaning is definite: for the valid input of this workload they are false.
FALSE_CLAIMS: tuple[type[SupabaseSyncError], ...] = (
    DuplicateDocument,
    SchemaMissing,
    PermissionDenied,
    AuthenticationError,
    InvalidDocument,
    UnsupportedFilter,
    ConfigurationError,
)

OPERATIONS = (
    "insert_one",
    "find_one_by_id",
    "find_paged",
    "count",
    "update_by_id",
    "update_by_key",
    "upsert",
    "delete_by_id",
)
WEIGHTS = (20, 12, 10, 8, 14, 10, 12, 14)
TAGS = ("a", "b", "c")
MAX_PROBLEMS = 60


class Doc(TypedDict, total=False):
    id: ObjectId
    version: str
    creation_utc: str


async def _identity(document: BaseDocument) -> Doc | None:
    return document  # type: ignore[return-value]


@dataclass
class Figures:
    operations: int = 0
    per_operation: Counter[str] = field(default_factory=Counter)
    typed_errors: int = 0
    typed_by_class: Counter[str] = field(default_factory=Counter)
    lost_writes: int = 0
    duplicates: int = 0
    wrong_results: int = 0
    untyped_errors: int = 0
    hangs: int = 0
    failing: Counter[str] = field(default_factory=Counter)  # "category:operation" → count
    problems: list[str] = field(default_factory=list)
    slowest: float = 0.0

    @property
    def clean(self) -> bool:
        return not (
            self.lost_writes
            or self.duplicates
            or self.wrong_results
            or self.untyped_errors
            or self.hangs
        )

    def problem(self, category: str, operation: str, text: str) -> None:
        setattr(self, category, getattr(self, category) + 1)
        self.failing[f"{category}:{operation}"] += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"[{category}] {operation}: {text}")

    def report(self) -> str:
        lines = [
            (f"operations={self.operations} typed_errors={self.typed_errors} "
            f"lost_writes={self.lost_writes} duplicates={self.duplicates} "
            f"wrong_results={self.wrong_results} untyped_errors={self.untyped_errors} "
            f"hangs={self.hangs} slowest={self.slowest:.2f}s"),
            f"per operation: {dict(sorted(self.per_operation.items()))}",
            f"typed errors: {dict(sorted(self.typed_by_class.items()))}",
            f"failing: {dict(sorted(self.failing.items()))}",
            *self.problems,
        ]
        return "\n".join(lines)


class RetryCounter(logging.Handler):
    """Counts the core's retry log lines (``… failed (…); retry N in …``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retry" in str(record.msg).lower():
            self.retries += 1


def chaos_logger(name: str = "tests.faults.chaos") -> tuple[logging.Logger, RetryCounter]:
    logger = logging.Logger(name)  # noqa: LOG001 - unregistered: one per run
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    counter = RetryCounter()
    logger.addHandler(counter)
    return logger, counter


class Truth:
    """The table read directly from PostgreSQL (never through the gateway or the proxy)."""

    def __init__(self, database_url: str, table: str) -> None:
        self._conn = psycopg.connect(database_url, autocommit=True)
        self._one = sql.SQL("SELECT data FROM public.{} WHERE id = %s").format(sql.Identifier(table))
        self._all = sql.SQL("SELECT id, data FROM public.{}").format(sql.Identifier(table))

    def get(self, doc_id: str) -> dict[str, Any] | None:
        rows = self._conn.execute(self._one, (doc_id,)).fetchall()
        if len(rows) > 1:
            raise AssertionError(f"{len(rows)} rows with id {doc_id!r}")
        return rows[0][0] if rows else None

    def all(self) -> list[tuple[str, dict[str, Any]]]:
        return [(row[0], row[1]) for row in self._conn.execute(self._all)]

    def close(self) -> None:
        self._conn.close()


def _matches(document: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    for name, condition in filters.items():
        value = document.get(name)
        for operator, operand in condition.items():
            if operator == "$eq" and value != operand:
                return False
            if operator == "$gte" and not (isinstance(value, int) and value >= operand):
                return False
            if operator == "$in" and value not in operand:
                return False
    return True


def model_find(
    documents: Mapping[str, dict[str, Any]],
    filters: Mapping[str, Any],
    limit: int | None,
    cursor: Cursor | None,
) -> FindResult[Any]:
    """Parlant's find semantics over the model: ``(creation_utc, id)`` ASC, after ``cursor``."""
    ordered = sorted(
        (d for d in documents.values() if _matches(d, filters)),
        key=lambda d: (d["creation_utc"], d["id"]),
    )
    if cursor is not None:
        ordered = [d for d in ordered if (d["creation_utc"], d["id"]) > (cursor.creation_utc, cursor.id)]
    total = len(ordered)
    if limit is not None and total > limit:
        items = ordered[:limit]
        last = items[-1] if items else None
        next_cursor = (
            Cursor(creation_utc=last["creation_utc"], id=ObjectId(last["id"])) if last else None
        )
        return FindResult(items=items, total_count=total, has_more=True, next_cursor=next_cursor)
    return FindResult(items=ordered, total_count=total, has_more=False, next_cursor=None)


class _Clock:
    """Unique, increasing creation_utc values shared by the workers of one run."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def next(self) -> str:
        n = next(self._counter)
        return f"2026-01-01T{n // 3_600_000_000 % 24:02d}:00:00.{n % 1_000_000:06d}+00:00"


class Worker:
    def __init__(
        self,
        name: str,
        collection: SupabaseDocumentCollection[Any],
        truth: Truth,
        rng: random.Random,
        figures: Figures,
        clock: _Clock,
        op_timeout: float,
    ) -> None:
        self.name = name
        self.collection = collection
        self.truth = truth
        self.rng = rng
        self.figures = figures
        self.clock = clock
        self.op_timeout = op_timeout
        self.model: dict[str, dict[str, Any]] = {}
        self.attempted: set[str] = set()
        self._serial = itertools.count(1)

    # documents ----------------------------------------------------------------------------

    def _new_doc(self) -> dict[str, Any]:
        serial = next(self._serial)
        doc_id = f"{self.name}-{serial:05d}"
        self.attempted.add(doc_id)
        return {
            "id": doc_id,
            "version": "1.0.0",
            "creation_utc": self.clock.next(),
            "worker": self.name,
            "key": f"k-{doc_id}",
            "n": self.rng.randrange(100),
            "tag": self.rng.choice(TAGS),
            "rev": 0,
        }

    def _existing_id(self, missing_share: float = 0.15) -> str:
        if not self.model or self.rng.random() < missing_share:
            return f"{self.name}-missing-{self.rng.randrange(10**6)}"
        return self.rng.choice(sorted(self.model))

    def _changes(self) -> dict[str, Any]:
        changes: dict[str, Any] = {"rev": self.rng.randrange(1, 10**6)}
        if self.rng.random() < 0.5:
            changes["n"] = self.rng.randrange(100)
        if self.rng.random() < 0.3:
            changes["tag"] = self.rng.choice(TAGS)
        return changes

    def _filters(self) -> dict[str, Any]:
        own = {"worker": {"$eq": self.name}}
        choice = self.rng.randrange(4)
        if choice == 0:
            return {**own, "tag": {"$eq": self.rng.choice(TAGS)}}
        if choice == 1:
            return {**own, "n": {"$gte": self.rng.randrange(100)}}
        if choice == 2:
            return {**own, "tag": {"$in": self.rng.sample(TAGS, 2)}}
        return own

    # running ------------------------------------------------------------------------------

    async def run(self, operations: int) -> None:
        for _ in range(operations):
            operation = self.rng.choices(OPERATIONS, WEIGHTS)[0]
            await self.step(operation)

    async def step(self, operation: str) -> None:
        self.figures.operations += 1
        self.figures.per_operation[operation] += 1
        await getattr(self, f"_op_{operation}")(operation)

    async def _call(self, operation: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        """(True, result) or (False, the typed error); untyped errors and hangs are recorded
        and reported as (False, None)."""
        started = time.monotonic()
        scope = anyio.fail_after(self.op_timeout)
        try:
            with scope:
                result = await fn(*args, **kwargs)
            return True, result
        except TimeoutError as error:
            if scope.cancel_called:
                self.figures.problem("hangs", operation, f"no answer within {self.op_timeout:.0f} s")
            else:
                self.figures.problem("untyped_errors", operation, f"builtin TimeoutError: {error}")
            return False, None
        except SupabaseSyncError as error:
            if isinstance(error, FALSE_CLAIMS):
                self.figures.problem(
                    "wrong_results", operation, f"false claim {type(error).__name__}: {error}"
                )
            else:
                self.figures.typed_errors += 1
                self.figures.typed_by_class[type(error).__name__] += 1
            return False, error
        except Exception as error:  # noqa: BLE001 - counting them is the point
            self.figures.problem(
                "untyped_errors", operation, f"{type(error).__module__}.{type(error).__name__}: {error}"
            )
            return False, None
        finally:
            self.figures.slowest = max(self.figures.slowest, time.monotonic() - started)

    def _expect(self, operation: str, actual: Any, expected: Any, what: str) -> bool:
        if actual == expected:
            return True
        self.figures.problem("wrong_results", operation, f"{what}: got {actual!r}, expected {expected!r}")
        return False

    def _confirm(self, operation: str, doc_id: str, expected: dict[str, Any] | None) -> None:
        """After a write acknowledged with the right answer: PostgreSQL must show ``expected``."""
        stored = self.truth.get(doc_id)
        if stored != expected:
            self.figures.problem(
                "lost_writes", operation, f"acknowledged, but {doc_id} is {stored!r}, expected {expected!r}"
            )
        self._sync(doc_id, stored)

    def _resolve(
        self, operation: str, doc_id: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        """After a failed write (or a wrong answer, already counted): PostgreSQL must show the
        write applied once or not at all."""
        stored = self.truth.get(doc_id)
        if stored != before and stored != after:
            self.figures.problem(
                "wrong_results",
                operation,
                f"failed write left {doc_id} as {stored!r}; allowed {before!r} or {after!r}",
            )
        self._sync(doc_id, stored)

    def _sync(self, doc_id: str, stored: dict[str, Any] | None) -> None:
        if stored is None:
            self.model.pop(doc_id, None)
        else:
            self.model[doc_id] = stored

    # operations ---------------------------------------------------------------------------

    async def _op_insert_one(self, operation: str) -> None:
        doc = self._new_doc()
        ok, result = await self._call(operation, self.collection.insert_one, doc)
        if ok:
            if self._expect(operation, result, InsertResult(acknowledged=True), "insert result"):
                self._confirm(operation, doc["id"], doc)
            else:
                self._resolve(operation, doc["id"], None, doc)
        else:
            self._resolve(operation, doc["id"], None, doc)

    async def _op_find_one_by_id(self, operation: str) -> None:
        doc_id = self._existing_id()
        ok, result = await self._call(operation, self.collection.find_one, {"id": {"$eq": doc_id}})
        if ok:
            self._expect(operation, result, self.model.get(doc_id), f"find_one {doc_id}")

    async def _op_find_paged(self, operation: str) -> None:
        filters = self._filters()
        limit = self.rng.randint(1, 4)
        cursor: Cursor | None = None
        for page in range(5):
            ok, result = await self._call(
                operation, self.collection.find, filters, limit=limit, cursor=cursor
            )
            if not ok:
                return
            expected = model_find(self.model, filters, limit, cursor)
            if not self._expect(operation, result, expected, f"page {page} of {filters} limit {limit}"):
                return
            if not result.has_more:
                return
            cursor = result.next_cursor

    async def _op_count(self, operation: str) -> None:
        filters = self._filters()
        ok, result = await self._call(operation, self.collection.find, filters)
        if ok:
            expected = model_find(self.model, filters, None, None)
            self._expect(operation, result.total_count, expected.total_count, f"total_count of {filters}")
            self._expect(operation, list(result.items), list(expected.items), f"items of {filters}")

    async def _update(self, operation: str, doc_id: str, filters: dict[str, Any]) -> None:
        before = self.model.get(doc_id)
        changes = self._changes()
        after = {**before, **changes} if before is not None else None
        ok, result = await self._call(operation, self.collection.update_one, filters, changes)
        if ok:
            expected = (
                UpdateResult(acknowledged=True, matched_count=1, modified_count=1, updated_document=after)
                if after is not None
                else UpdateResult(acknowledged=True, matched_count=0, modified_count=0, updated_document=None)
            )
            if self._expect(operation, result, expected, f"update of {doc_id}"):
                self._confirm(operation, doc_id, after)
            else:
                self._resolve(operation, doc_id, before, after)
        else:
            self._resolve(operation, doc_id, before, after)

    async def _op_update_by_id(self, operation: str) -> None:
        doc_id = self._existing_id()
        await self._update(operation, doc_id, {"id": {"$eq": doc_id}})

    async def _op_update_by_key(self, operation: str) -> None:
        doc_id = self._existing_id()
        await self._update(operation, doc_id, {"key": {"$eq": f"k-{doc_id}"}})

    async def _op_upsert(self, operation: str) -> None:
        if self.model and self.rng.random() < 0.5:
            doc_id = self.rng.choice(sorted(self.model))
            before: dict[str, Any] | None = self.model[doc_id]
            params = {**self.model[doc_id], **self._changes()}
        else:
            params = self._new_doc()
            doc_id, before = params["id"], None
        after = {**before, **params} if before is not None else params
        ok, result = await self._call(
            operation, self.collection.update_one, {"id": {"$eq": doc_id}}, params, upsert=True
        )
        if ok:
            expected = (
                UpdateResult(acknowledged=True, matched_count=1, modified_count=1, updated_document=after)
                if before is not None
                else UpdateResult(acknowledged=True, matched_count=0, modified_count=0, updated_document=params)
            )
            if self._expect(operation, result, expected, f"upsert of {doc_id}"):
                self._confirm(operation, doc_id, after)
            else:
                self._resolve(operation, doc_id, before, after)
        else:
            self._resolve(operation, doc_id, before, after)

    async def _op_delete_by_id(self, operation: str) -> None:
        doc_id = self._existing_id()
        before = self.model.get(doc_id)
        ok, result = await self._call(operation, self.collection.delete_one, {"id": {"$eq": doc_id}})
        if ok:
            expected = DeleteResult(
                acknowledged=True,
                deleted_count=1 if before is not None else 0,
                deleted_document=before,
            )
            if self._expect(operation, result, expected, f"delete of {doc_id}"):
                self._confirm(operation, doc_id, None)
            else:
                self._resolve(operation, doc_id, before, None)
        else:
            self._resolve(operation, doc_id, before, None)

    # the end ------------------------------------------------------------------------------

    def final_check(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """The worker's documents in PostgreSQL must be exactly the model."""
        mine = {doc_id: data for doc_id, data in rows if data.get("worker") == self.name}
        for doc_id, expected in sorted(self.model.items()):
            if mine.get(doc_id) != expected:
                self.figures.problem(
                    "lost_writes", "final", f"{doc_id} is {mine.get(doc_id)!r}, expected {expected!r}"
                )
        for doc_id in sorted(set(mine) - set(self.model)):
            self.figures.problem("duplicates", "final", f"{doc_id} exists but was never acknowledged")
        keys = Counter(data.get("key") for data in mine.values())
        for key, n in sorted(keys.items(), key=lambda item: str(item[0])):
            if n > 1:
                self.figures.problem("duplicates", "final", f"{n} documents with key {key!r}")


def chaos_settings(url: str, key: str, *, read_timeout: float = 1.0, attempts: int = 4, **extra: Any) -> SupabaseSettings:
    return SupabaseSettings(
        url=url,
        key=key,
        timeouts={"connect": 2.0, "read": read_timeout, "write": 2.0, "pool": 10.0},
        retry={"attempts": attempts, "base_delay": 0.01, "max_delay": 0.05},
        max_workers=8,
        metadata_cache_ttl=0,
        **extra,
    )


async def run_chaos(
    *,
    settings: SupabaseSettings,
    database_url: str,
    prefix: str,
    table: str,
    operations: int,
    workers: int = 2,
    seed: int = 0,
    op_timeout: float = 30.0,
    logger: logging.Logger | None = None,
    on_ready: Callable[[], None] | None = None,
    on_done: Callable[[], None] | None = None,
    directed: Callable[[int], None] | None = None,
    directed_positions: int = 3,
    undirect: Callable[[], None] | None = None,
) -> Figures:
    """Run ``operations`` operations split over ``workers`` concurrent workers; check them.

    ``on_ready`` runs once the collection is open (turn the faults on), ``on_done`` after the
    random phase. With ``directed(position)`` (script one fault for the request ``position``
    requests from now) a directed phase follows: one worker runs every operation kind
    ``directed_positions`` times, faulting its 1st, 2nd, … request, ``undirect()`` (clear the
    script) after each; those operations count in ``operations`` too.
    """
    if logger is None:
        logger, _ = chaos_logger()
    figures = Figures()
    clock = _Clock()
    truths = [Truth(database_url, table) for _ in range(workers)]
    try:
        async with SupabaseDocumentDatabase(logger, prefix, settings) as database:
            collection = await database.get_or_create_collection("docs", Doc, _identity)
            crew = [
                Worker(
                    f"w{i}",
                    collection,
                    truths[i],
                    random.Random(f"{seed}/{i}"),
                    figures,
                    clock,
                    op_timeout,
                )
                for i in range(workers)
            ]
            shares = [operations // workers + (1 if i < operations % workers else 0) for i in range(workers)]
            if on_ready is not None:
                on_ready()
            try:
                async with anyio.create_task_group() as group:
                    for worker, share in zip(crew, shares):
                        group.start_soon(worker.run, share)
            finally:
                if on_done is not None:
                    on_done()
            if directed is not None:
                for operation in OPERATIONS:
                    for position in range(directed_positions):
                        directed(position)
                        try:
                            await crew[0].step(operation)
                        finally:
                            if undirect is not None:
                                undirect()
        rows = truths[0].all()
        for worker in crew:
            worker.final_check(rows)
    finally:
        for truth in truths:
            truth.close()
    return figures
