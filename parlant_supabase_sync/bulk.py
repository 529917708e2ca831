"""Bulk work on one collection: import, export, failed documents and restore.

* `import_jsonl` reads its input three times and writes only in the last pass: *validate* (no
  request; a bad line anywhere → `ImportInvalid`, nothing written), *compare* (new, changed,
  unchanged by id and content; `dry_run` stops here), *write* (unchanged documents are never
  rewritten, so a re-run writes nothing). A pipe is spooled to a `SpooledTemporaryFile`.
* `plan_export` decides stdout, file or directory before the first request; `export` writes
  each file to a temporary file beside it, renamed at the end, removed on any exception.
* `failed_documents`, `restore_failed`: the failed-migrations tables.

Nothing here prints: progress goes to an optional `Progress` (the CLI passes a rich one).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

from .core import read_rows
from .ddl_functions import FAILED_KEY
from .errors import (
    KEPT_PROBLEMS,
    ConfigurationError,
    DuplicateDocument,
    ExportTargetError,
    ImportConflict,
    ImportInvalid,
    InvalidDocument,
)

if TYPE_CHECKING:
    from .api import Collection

__all__ = [
    "REQUIRED_FIELDS", "ExportPlan", "ExportResult", "ExportTarget", "ExportTargetError",
    "FailedDocument", "ImportConflict", "ImportInvalid", "ImportReport", "OnConflict", "Progress",
    "RestoreResult", "Source", "check_shape", "export", "export_file_name", "failed_documents",
    "import_jsonl", "parse_line", "plan_export", "restore_failed",
]

REQUIRED_FIELDS = ("id", "creation_utc", "version")
OnConflict = Literal["fail", "ignore", "replace"]
#: What `import_jsonl` reads: a path, a binary or text stream, or lines.
Source: TypeAlias = "str | os.PathLike[str] | IO[bytes] | IO[str] | Iterable[str] | Iterable[bytes]"
_SPOOL_BYTES = 8 * 1024 * 1024  # a piped input above this goes to a temporary file on disk


class Progress(Protocol):
    """Where bulk work reports progress: one phase at a time (`begin` … `advance` … `end`)."""

    def begin(self, label: str, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def end(self) -> None: ...


Advance = Callable[[int], None]


@contextlib.contextmanager
def _phase(progress: Progress | None, label: str, total: int | None) -> Iterator[Advance]:
    if progress is None:
        yield lambda n: None
        return
    progress.begin(label, total)
    try:
        yield progress.advance
    finally:
        progress.end()


class _AsDict:
    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        return data


# --- lines ---------------------------------------------------------------------------------


def check_shape(document: Any) -> str | None:
    """Why `document` cannot be stored as a Parlant document, or None if it can."""
    if not isinstance(document, dict):
        return f"not a JSON object (got {type(document).__name__})"
    for name in REQUIRED_FIELDS:
        if name not in document:
            return f"missing {name!r}"
        if not isinstance(document[name], str):
            return f"{name!r} must be a string"
    from .rows import validate_document

    try:
        validate_document(document)
    except InvalidDocument as exc:
        return str(exc)
    return None


def parse_line(line: str | bytes) -> tuple[dict[str, Any] | None, str | None]:
    """One JSON line → (document, None), or (None, why it cannot be imported)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON (jsonb has no NaN/Infinity)")

    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"not UTF-8 text ({exc.reason} at byte {exc.start + 1})"
    try:
        document = json.loads(line, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    except ValueError as exc:
        return None, str(exc)
    problem = check_shape(document)
    return (None, problem) if problem else (document, None)


def _canonical(document: Any) -> str:
    # Python's == says True == 1; documents are compared as JSON text instead.
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


class _Input:
    """The import's lines, readable once per pass: (line number, text) with blank lines skipped."""

    def __init__(self, source: Any) -> None:
        self._path: str | None = None
        self._stream: Any = None
        self._start = 0
        if isinstance(source, (str, os.PathLike)):
            self._path = os.fspath(source)
            try:
                with open(self._path, "rb"):
                    pass
            except OSError as exc:
                raise ConfigurationError(f"cannot read {self._path}: {exc.strerror}") from None
        elif hasattr(source, "seekable") and source.seekable():
            self._stream, self._start = source, source.tell()
        else:
            self._stream = self._spool(source)

    @staticmethod
    def _spool(source: Iterable[Any]) -> IO[bytes]:
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES, mode="w+b")  # noqa: SIM115
        number = 0
        try:
            for number, line in enumerate(source, start=1):
                data = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
                spool.write(data if data.endswith(b"\n") else data + b"\n")
        except UnicodeDecodeError as exc:
            spool.close()
            raise ImportInvalid([(number + 1, f"not UTF-8 text ({exc.reason})")], 1) from None
        except BaseException:
            spool.close()
            raise
        return spool

    def lines(self) -> Iterator[tuple[int, str | bytes]]:
        with contextlib.ExitStack() as stack:
            if self._path is not None:
                stream: Any = stack.enter_context(open(self._path, "rb"))
            else:
                stream = self._stream
                stream.seek(self._start)
            number = 0
            try:
                for number, line in enumerate(stream, start=1):
                    if line.strip():
                        yield number, line
            except UnicodeDecodeError as exc:  # a text stream that is not UTF-8
                raise ImportInvalid([(number + 1, f"not UTF-8 text ({exc.reason})")], 1) from None

    def close(self) -> None:
        if self._path is None and isinstance(self._stream, tempfile.SpooledTemporaryFile):
            self._stream.close()


# --- import --------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What one `import_jsonl` run found and wrote (or, with `dry_run`, would write)."""

    collection: str
    table: str
    dry_run: bool
    on_conflict: str
    lines: int = 0  # non-blank input lines
    new: int = 0  # ids not in the collection
    changed: int = 0  # ids stored with different content
    unchanged: int = 0  # ids stored with the same content (never rewritten)
    duplicates: int = 0  # lines repeating an earlier line's document exactly (skipped)
    written: int = 0  # documents written (0 with dry_run)
    #: The changed documents, `{"line", "id"}` (the first 100).
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """False only for a dry run that would stop at changed documents (on_conflict "fail")."""
        return not (self.changed and self.on_conflict == "fail")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def summary(self) -> str:
        """One line with the counts."""
        kept = {"fail": "conflicting", "ignore": "kept as stored", "replace": "replaced"}
        changed = f"{self.changed} changed ({kept[self.on_conflict]})"
        if self.dry_run:
            head = f"dry run: would write {self.new + self._replaced()} of {self.lines} line(s)"
        else:
            head = f"wrote {self.written} of {self.lines} line(s)"
        return (
            f"{head}: {self.new} new, {changed}, {self.unchanged} unchanged, "
            f"{self.duplicates} duplicate line(s)"
        )

    def _replaced(self) -> int:
        return self.changed if self.on_conflict == "replace" else 0


def import_jsonl(
    collection: Collection,
    source: Source,
    *,
    dry_run: bool = False,
    on_conflict: OnConflict = "fail",
    batch_size: int = 500,
    progress: Progress | None = None,
) -> ImportReport:
    """Import JSON lines (a path, a binary or text stream, or an iterable of lines).

    Raises `ImportInvalid` for a bad line anywhere and `ImportConflict` for changed documents
    under `on_conflict="fail"`, both before anything is written. `dry_run`: the report of what
    would be written, without a single write request.
    """
    if on_conflict not in ("fail", "ignore", "replace"):
        raise ConfigurationError(f"on_conflict is fail, ignore or replace, not {on_conflict!r}")
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be at least 1, not {batch_size}")
    run = _Import(collection, _Input(source), batch_size, dry_run, on_conflict)
    try:
        with _phase(progress, f"validate {collection.name}", None) as advance:
            run.validate(advance)
        unique = run.report.lines - run.report.duplicates
        with _phase(progress, f"compare {collection.name}", unique) as advance:
            plan = run.compare(advance)
        if run.report.changed and on_conflict == "fail" and not dry_run:
            raise ImportConflict(run.report)
        if plan and not dry_run:
            with _phase(progress, f"import {collection.name}", len(plan)) as advance:
                run.write(plan, advance)
        return run.report
    finally:
        run.data.close()


class _Import:
    """One import run: its input, the lines that repeat a document, and the report."""

    def __init__(
        self, collection: Collection, data: _Input, size: int, dry_run: bool, on_conflict: str
    ) -> None:
        self.collection, self.data, self.size = collection, data, size
        self.report: ImportReport = ImportReport(
            collection.name, collection.table, dry_run, on_conflict
        )
        self.repeats: set[int] = set()

    def validate(self, advance: Advance) -> None:
        """Pass 1 (no request): every line parsed; `ImportInvalid` if any is bad."""
        first: dict[bytes, tuple[bytes, int]] = {}  # id digest → (document digest, first line)
        problems: list[tuple[int, str]] = []  # the first ones; `bad` counts them all
        bad = 0
        for number, line in self.data.lines():
            self.report.lines += 1
            advance(1)
            document, error = parse_line(line)
            if document is None:
                bad += 1
                problems += [(number, error or "not a document")][: KEPT_PROBLEMS - len(problems)]
                continue
            digest = _digest(_canonical(document))
            previous = first.setdefault(_digest(document["id"]), (digest, number))
            if previous[1] == number:
                continue
            if previous[0] == digest:
                self.repeats.add(number)
                self.report.duplicates += 1
                continue
            bad += 1
            why = f"id {document['id']!r} is also on line {previous[1]}, with other content"
            why += "; keep one of them"
            problems += [(number, why)][: KEPT_PROBLEMS - len(problems)]
        if bad:
            raise ImportInvalid(problems, bad)

    def batches(
        self, wanted: Mapping[bytes, bool] | None = None
    ) -> Iterator[list[tuple[int, dict[str, Any]]]]:
        """The validated documents in batches (repeats left out; `wanted`: only those ids)."""
        batch: list[tuple[int, dict[str, Any]]] = []
        for number, line in self.data.lines():
            if number in self.repeats:
                continue
            document, _ = parse_line(line)
            assert document is not None  # pass 1 refused every line that is not a document
            if wanted is None or _digest(document["id"]) in wanted:
                batch.append((number, document))
            if len(batch) >= self.size:
                yield batch
                batch = []
        if batch:
            yield batch

    def compare(self, advance: Advance) -> dict[bytes, bool]:
        """Pass 2 (reads only): id digest → True (replace) / False (insert) for what to write."""
        report = self.report
        plan: dict[bytes, bool] = {}
        for batch in self.batches():
            ids = [document["id"] for _, document in batch]
            found = self.collection.core.find({"id": {"$in": ids}}).items
            stored = {d["id"]: _digest(_canonical(d)) for d in found}
            for number, document in batch:
                current = stored.get(document["id"])
                if current is None:
                    report.new += 1
                    plan[_digest(document["id"])] = False
                elif current == _digest(_canonical(document)):
                    report.unchanged += 1
                else:
                    report.changed += 1
                    if len(report.conflicts) < KEPT_PROBLEMS:
                        report.conflicts.append({"line": number, "id": document["id"]})
                    if report.on_conflict == "replace":
                        plan[_digest(document["id"])] = True
            advance(len(batch))
        return plan

    def write(self, plan: dict[bytes, bool], advance: Advance) -> None:
        """Pass 3: insert the new documents, replace the changed ones `plan` marks."""
        for batch in self.batches(plan):
            new = [d for _, d in batch if not plan[_digest(d["id"])]]
            changed = [d for _, d in batch if plan[_digest(d["id"])]]
            if new:
                self.collection.core.insert_many(new)
            if changed:
                self.collection.core.put_many(changed)
            self.report.written += len(batch)
            advance(len(batch))


# --- export --------------------------------------------------------------------------------


def export_file_name(collection: Collection) -> str:
    """The file a collection is exported to inside a directory: `<store>.<collection>.jsonl`."""
    return f"{collection.store.label}.{collection.name}.jsonl"


@dataclass(frozen=True)
class ExportTarget:
    """One collection and where it goes (`path` None: stdout)."""

    collection: Collection
    path: str | None


@dataclass(frozen=True)
class ExportPlan:
    """Every target of one export; `directory`: created (if missing) before the first request."""

    targets: tuple[ExportTarget, ...]
    directory: str | None = None


@dataclass(frozen=True)
class ExportResult(_AsDict):
    """One exported collection."""

    collection: str
    path: str | None
    documents: int


def plan_export(
    collections: Sequence[Collection], output: str | os.PathLike[str] | None
) -> ExportPlan:
    """Decide where each collection goes; raises `ExportTargetError` (no request is sent).

    `output` None or "-": stdout, for one collection. Several collections: a directory (created
    when missing). One collection and an existing directory (or a path ending in a slash):
    `DIR/<store>.<collection>.jsonl`. Anything else is a file whose directory must exist.
    """
    unique = list({c.table: c for c in collections}.values())
    if not unique:
        raise ExportTargetError("nothing to export: name at least one collection")
    out = None if output is None or os.fspath(output) == "-" else os.fspath(output)
    if out is None:
        if len(unique) > 1:
            raise ExportTargetError(
                f"{len(unique)} collections need an output directory: pass -o DIR (one "
                "<store>.<collection>.jsonl each), or name one collection to write to stdout"
            )
        return ExportPlan((ExportTarget(unique[0], None),))
    wants_directory = len(unique) > 1 or out.endswith(("/", os.sep)) or os.path.isdir(out)
    if not wants_directory:
        parent = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(parent):
            raise ExportTargetError(
                f"cannot write {out}: directory {parent} does not exist; create it or choose "
                "another output"
            )
        _require_writable(parent)
        return ExportPlan((ExportTarget(unique[0], out),))
    if os.path.exists(out) and not os.path.isdir(out):
        raise ExportTargetError(
            f"{out} is a file, not a directory: {len(unique)} collections are written as "
            "DIR/<store>.<collection>.jsonl; pass a directory (it is created if missing)"
        )
    if os.path.isdir(out):
        _require_writable(out)
    targets = tuple(ExportTarget(c, os.path.join(out, export_file_name(c))) for c in unique)
    return ExportPlan(targets, directory=out)


def _require_writable(directory: str) -> None:
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ExportTargetError(f"cannot write to directory {directory}: permission denied")


def export(
    plan: ExportPlan,
    *,
    stdout: IO[str] | None = None,
    page_size: int | None = None,
    progress: Progress | None = None,
    totals: bool = False,
) -> list[ExportResult]:
    """Write every target of `plan` as JSON lines, one document per line.

    Files appear complete or not at all (temporary file, then `os.replace`). `totals`: one
    count request per collection, for the progress total.
    """
    if plan.directory is not None:
        os.makedirs(plan.directory, exist_ok=True)
    results = []
    for target in plan.targets:
        collection = target.collection
        total = collection.count() if totals else None
        label = f"export {collection.store.label}.{collection.name}"
        with _phase(progress, label, total) as advance:
            if target.path is None:
                n = _write_documents(collection, stdout or sys.stdout, page_size, advance)
            else:
                n = _write_file(collection, target.path, page_size, advance)
        results.append(ExportResult(collection.name, target.path, n))
    return results


def _write_documents(
    collection: Collection, out: IO[str], page_size: int | None, advance: Advance
) -> int:
    n = 0
    for document in collection.rows(page_size=page_size):
        out.write(_dumps(document) + "\n")
        n += 1
        advance(1)
    out.flush()
    return n


def _write_file(collection: Collection, path: str, page_size: int | None, advance: Advance) -> int:
    directory, name = os.path.split(os.path.abspath(path))
    # Owner-only (mkstemp's 0600): the file holds every document of the collection.
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with open(fd, "w", encoding="utf-8", newline="\n") as out:
            n = _write_documents(collection, out, page_size, advance)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return n


# --- failed migrations ---------------------------------------------------------------------


@dataclass(frozen=True)
class FailedDocument(_AsDict):
    """A row of a failed-migrations table."""

    collection: str
    id: str | None
    failed_utc: str | None
    document: Any


@dataclass(frozen=True)
class RestoreResult(_AsDict):
    """The outcome of restoring one failed document."""

    id: str
    restored: bool
    message: str


def failed_documents(collection: Collection) -> Iterator[FailedDocument]:
    """Rows of the collection's failed-migrations table (none for `metadata`)."""
    if collection.failed_table is None:
        return
    connection = collection.store.connection
    after: list[tuple[str, str]] = []
    while True:
        # Keyset on the table's unique key: rows added or removed meanwhile never make a page
        # skip or repeat one (ids are not unique there).
        rows = read_rows(
            connection.transport,
            "failed",
            collection.failed_table,
            after,
            order=f"{FAILED_KEY}.asc",
            limit=connection.settings.page_size,
        )
        if not rows:  # a short page may be the server's max-rows cap: only an empty one ends it
            return
        for row in rows:
            yield FailedDocument(
                collection.name, row.get("id"), row.get("failed_utc"), row.get("data")
            )
        after = [(FAILED_KEY, f"gt.{rows[-1][FAILED_KEY]}")]


def restore_failed(collection: Collection, ids: Iterable[str]) -> list[RestoreResult]:
    """Move documents back from the failed-migrations table (after they were fixed).

    Each is validated, inserted, and removed from the failed table only after the insert
    succeeded. Parlant runs its migration loader over it at the next start.
    """
    if collection.failed_table is None:
        raise ConfigurationError("the metadata collection has no failed-migrations table")
    return [_restore_one(collection, collection.failed_table, i) for i in dict.fromkeys(ids)]


def _restore_one(collection: Collection, failed_table: str, doc_id: str) -> RestoreResult:
    transport = collection.store.connection.transport
    rows = read_rows(transport, "restore", failed_table, [("id", f"eq.{doc_id}")])
    if not rows:
        return RestoreResult(doc_id, False, f"not in {failed_table}")
    if len({_canonical(r.get("data")) for r in rows}) > 1:
        return RestoreResult(
            doc_id, False, f"{len(rows)} different rows with this id in {failed_table}; "
            "delete the unwanted ones first",
        )  # fmt: skip
    raw: Any = rows[0].get("data")
    problem = check_shape(raw)
    if problem is None and raw["id"] != doc_id:
        problem = f"its 'id' field is {raw['id']!r}, not {doc_id!r}"
    if problem is not None:
        return RestoreResult(
            doc_id, False, f"not restored: {problem}; fix the row in {failed_table} first"
        )
    current = collection.get(doc_id)
    if current is not None and _canonical(current) != _canonical(raw):
        return RestoreResult(
            doc_id, False, f"{collection.table} already holds a different document with this "
            "id; delete it first to restore",
        )  # fmt: skip
    if current is None:
        try:
            collection.insert(raw)
        except DuplicateDocument:
            return RestoreResult(
                doc_id, False, f"{collection.table} got a document with this id meanwhile"
            )
    collection.store.database.write("restore", failed_table, "delete_many", {"ids": [doc_id]})
    message = "restored" if current is None else "already present; removed from failed"
    return RestoreResult(doc_id, True, message)
