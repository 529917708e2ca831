"""Move the documents of Parlant's JSON-file stores into the Supabase tables: `migrate_local()`.

Parlant's `session_store="local"` (and `customer_store`, `variable_store`) keep each store in
one `JSONFileDocumentDatabase` file under `PARLANT_HOME`: ``sessions.json``,
``customers.json`` and ``context_variables.json``, each a JSON object of collection name →
list of documents (plus ``failed_migrations`` when a document failed Parlant's loader). This
module copies every document of those collections into the adapter's tables, unchanged
(Parlant's own loaders migrate old versions when the stores start on Supabase)::

    from pathlib import Path
    from parlant_supabase_sync import connect
    from parlant_supabase_sync.migrate_local import migrate_local

    with connect() as db:
        report = migrate_local(Path.home() / ".parlant", db, dry_run=True)
        print(report.summary())

Guarantees:

* **Validated first.** Every file is read and every document checked (JSON, shape, values
  jsonb can store) before anything is written; a broken file raises `MigrationInputError`
  naming the file and the documents, and nothing is written. The target tables are read
  next, so a missing table (`TableMissing`) also stops the run before any write.
* **Idempotent.** A document whose id is already in its table is never written again:
  identical → *skipped*, different → a *conflict* (reported, not overwritten). A re-run
  writes nothing new. The ``metadata`` collection holds one document per store: a target
  that already has metadata of the same version counts as skipped, another version is a
  conflict (a second metadata document would confuse Parlant).
* **One path.** Reads and writes go through `api.Connection` → store → collection
  (``find``/``insert_many``), i.e. the one transport with its retries and exactly-once writes.
* ``dry_run=True`` reads everything and reports what would be written, writing nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DuplicateDocument, SupabaseSyncError
from .naming import DEFAULT_STORES, METADATA_COLLECTION, table_name

if TYPE_CHECKING:
    from .api import Collection, Connection, Store
    from .settings import SupabaseSettings

__all__ = [
    "FAILED_MIGRATIONS",
    "OTHER_PARLANT_FILES",
    "SOURCE_FILES",
    "MigrationInputError",
    "MigrationReport",
    "TableReport",
    "migrate_local",
]

#: Store key → the file Parlant's JSON-file store writes under PARLANT_HOME
#: (parlant.sdk: ``PARLANT_HOME_DIR / f"{name}.json"``; parlant.bin.server: the same names).
SOURCE_FILES: Mapping[str, str] = {
    "sessions": "sessions.json",
    "customers": "customers.json",
    "context_variables": "context_variables.json",
}
#: The collection Parlant's JSON-file database moves documents its loader refused into (one
#: per file, for all collections together); not migrated, reported under ``ignored``.
FAILED_MIGRATIONS = "failed_migrations"
#: Other files Parlant keeps under PARLANT_HOME (stores this adapter has no tables for yet);
#: listed in the report when present, never read.
OTHER_PARLANT_FILES: tuple[str, ...] = (
    "agents.json",
    "tags.json",
    "guidelines.json",
    "guideline_tool_associations.json",
    "relationships.json",
    "evaluations.json",
    "evaluation_cache.json",
    "services.json",
    "glossary_tags.json",
    "canned_responses.json",
    "journey_associations.json",
    "capabilities.json",
    "cache_embeddings.json",
)
_LOOKUP_CHUNK = 100
_SHOWN_PROBLEMS = 20


class MigrationInputError(SupabaseSyncError, ValueError):
    """A file under PARLANT_HOME cannot be migrated as it is; nothing was written."""

    def __init__(self, problems: Sequence[str]) -> None:
        shown = list(problems[:_SHOWN_PROBLEMS])
        more = len(problems) - len(shown)
        text = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        super().__init__(f"nothing was migrated: {text}")
        self.problems = list(problems)


# --- the report ----------------------------------------------------------------------------------


@dataclass
class TableReport:
    """One collection: documents read from the file, written, skipped (already there, identical)
    and conflicts (ids already there with a different document; not overwritten)."""

    store: str
    collection: str
    table: str
    source: str
    read: int = 0
    written: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)


@dataclass
class MigrationReport:
    """What `migrate_local` did (or, with ``dry_run``, would do), per table."""

    parlant_home: str
    dry_run: bool
    tables: list[TableReport] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    ignored: list[dict[str, Any]] = field(default_factory=list)
    other_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No conflicts (ignored collections and other files are listed, not failures)."""
        return not any(t.conflicts for t in self.tables)

    @property
    def read(self) -> int:
        return sum(t.read for t in self.tables)

    @property
    def written(self) -> int:
        return sum(t.written for t in self.tables)

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.tables)

    @property
    def conflicts(self) -> int:
        return sum(len(t.conflicts) for t in self.tables)

    def table(self, name: str) -> TableReport:
        """The report of one table (by table name, or ``store/collection``)."""
        for entry in self.tables:
            if name in (entry.table, f"{entry.store}/{entry.collection}"):
                return entry
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "ok": self.ok,
            "totals": {
                "read": self.read,
                "written": self.written,
                "skipped": self.skipped,
                "conflicts": self.conflicts,
            },
        }

    def summary(self) -> str:
        """A table for people: one line per table, then what was not migrated."""
        verb = "would write" if self.dry_run else "written"
        header = ("table", "read", verb, "skipped", "conflicts")
        rows = [header] + [
            (t.table, str(t.read), str(t.written), str(t.skipped), str(len(t.conflicts)))
            for t in self.tables
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                      enumerate(zip(row, widths)))
            for row in rows
        ]
        for entry in self.tables:
            if entry.conflicts:
                shown = ", ".join(entry.conflicts[:10])
                more = len(entry.conflicts) - 10
                lines.append(
                    f"conflicts in {entry.table} (kept as they are): {shown}"
                    + (f" and {more} more" if more > 0 else "")
                )
        for item in self.ignored:
            lines.append(
                f"not migrated: {item['file']} {item['collection']} "
                f"({item['documents']} document(s)): {item['reason']}"
            )
        if self.missing_files:
            lines.append("no file (nothing to migrate): " + ", ".join(self.missing_files))
        if self.other_files:
            lines.append(
                "other Parlant files, not migrated (no Supabase store for them): "
                + ", ".join(self.other_files)
            )
        return "\n".join(lines)


# --- reading and validating the files ------------------------------------------------------------


@dataclass
class _Source:
    store: str
    path: Path
    collections: dict[str, list[dict[str, Any]]]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (jsonb has no NaN/Infinity)")


def _load_file(path: Path, store: str, problems: list[str]) -> _Source | None:
    from .api import check_shape

    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(f"{path}: cannot be read ({exc.strerror or exc})")
        return None
    if not raw:  # JSONFileDocumentDatabase reads an empty file as no collections
        return _Source(store, path, {})
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8 text (byte {exc.start})")
        return None
    except json.JSONDecodeError as exc:
        problems.append(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")
        return None
    except ValueError as exc:
        problems.append(f"{path}: {exc}")
        return None
    if not isinstance(data, dict):
        problems.append(
            f"{path}: not a Parlant JSON-file database (a JSON object of collections), "
            f"got {type(data).__name__}"
        )
        return None
    collections: dict[str, list[dict[str, Any]]] = {}
    for name, documents in data.items():
        if not isinstance(documents, list):
            problems.append(
                f"{path}: collection {name!r} is not a list of documents "
                f"(got {type(documents).__name__})"
            )
            continue
        for index, document in enumerate(documents):
            problem = check_shape(document)
            if problem is not None:
                doc_id = document.get("id") if isinstance(document, dict) else None
                named = f" (id {doc_id!r})" if isinstance(doc_id, str) else ""
                problems.append(f"{path}: {name}[{index}]{named}: {problem}")
        collections[name] = documents
    return _Source(store, path, collections)


# --- comparing documents -------------------------------------------------------------------------


def _normal(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        # jsonb keeps numbers as numerics: 1e+20 comes back as 100000000000000000000 (an int).
        if math.isfinite(value) and value.is_integer() and "e" in repr(value):
            return int(value)
        return value
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


def _canonical(document: Mapping[str, Any]) -> str:
    # Compared as JSON text, not with ==, so True never equals 1.
    return json.dumps(_normal(document), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing(collection: Collection, ids: Iterable[str]) -> dict[str, str]:
    """id → canonical text of the documents with these ids already in the table."""
    found: dict[str, str] = {}
    for chunk in _chunks(list(ids), _LOOKUP_CHUNK):
        for document in collection.find({"id": {"$in": list(chunk)}}).items:
            found[str(document["id"])] = _canonical(document)
    return found


# --- planning and writing ------------------------------------------------------------------------


@dataclass
class _Plan:
    report: TableReport
    collection: Collection
    new: list[dict[str, Any]]


def _plan_documents(
    collection: Collection, documents: list[dict[str, Any]], report: TableReport
) -> list[dict[str, Any]]:
    first: dict[str, tuple[str, dict[str, Any]]] = {}
    for document in documents:
        doc_id = document["id"]
        text = _canonical(document)
        seen = first.get(doc_id)
        if seen is None:
            first[doc_id] = (text, document)
        elif seen[0] == text:
            report.skipped += 1  # the same document twice in the file
        else:
            report.conflicts.append(doc_id)  # a second, different document with this id
    existing = _existing(collection, first)
    new: list[dict[str, Any]] = []
    for doc_id, (text, document) in first.items():
        current = existing.get(doc_id)
        if current is None:
            new.append(document)
        elif current == text:
            report.skipped += 1
        else:
            report.conflicts.append(doc_id)
    return new


def _plan_metadata(
    collection: Collection, documents: list[dict[str, Any]], report: TableReport
) -> list[dict[str, Any]]:
    current = list(collection.find({}).items)
    if not current:
        # One metadata document per store; any further one in the file would be a second.
        report.skipped += max(0, len(documents) - 1)
        return documents[:1]
    texts = {_canonical(doc) for doc in current}
    versions = {doc.get("version") for doc in current}
    for document in documents:
        if _canonical(document) in texts or document.get("version") in versions:
            report.skipped += 1
        else:
            report.conflicts.append(str(document["id"]))
    return []


def _write(plan: _Plan, batch_size: int) -> None:
    for chunk in _chunks(plan.new, batch_size):
        batch = [dict(doc) for doc in chunk]
        try:
            plan.collection.insert_many(batch)
            plan.report.written += len(batch)
        except DuplicateDocument:
            # Someone wrote some of these ids since we looked: classify them again, once.
            existing = _existing(plan.collection, [doc["id"] for doc in batch])
            remaining = []
            for doc in batch:
                current = existing.get(doc["id"])
                if current is None:
                    remaining.append(doc)
                elif current == _canonical(doc):
                    plan.report.skipped += 1
                else:
                    plan.report.conflicts.append(doc["id"])
            plan.collection.insert_many(remaining)
            plan.report.written += len(remaining)


def _store_for(connection: Connection, key: str, prefixes: Mapping[str, str]) -> Store:
    prefix = prefixes.get(key)
    if prefix is None or prefix == DEFAULT_STORES[key].prefix:
        return connection.store(key)
    return connection.store(f"{prefix}={key}")


def migrate_local(
    parlant_home: Path,
    connection_or_settings: Connection | SupabaseSettings,
    *,
    dry_run: bool = False,
    prefixes: Mapping[str, str] | None = None,
    batch_size: int = 500,
) -> MigrationReport:
    """Copy the documents of Parlant's JSON-file stores under `parlant_home` into Supabase.

    `connection_or_settings`: an open `api.Connection` (left open) or `SupabaseSettings`
    (a connection is opened and closed here). `prefixes`: table prefixes per store key
    (``{"sessions": "acme_sessions_"}``) when the stores do not use the default ones.
    `batch_size`: documents per write request (each request all or nothing).
    See the module docstring for what is validated, skipped and reported.
    """
    from .api import Connection

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    unknown = sorted(set(prefixes or {}) - set(SOURCE_FILES))
    if unknown:
        raise ValueError(
            f"unknown store(s) in prefixes: {', '.join(unknown)} (use {', '.join(SOURCE_FILES)})"
        )
    home = Path(parlant_home)
    if not home.is_dir():
        raise MigrationInputError([f"{home}: not a directory (PARLANT_HOME)"])
    report = MigrationReport(parlant_home=str(home), dry_run=dry_run)
    report.other_files = [name for name in OTHER_PARLANT_FILES if (home / name).exists()]

    # 1. Every file, every document, before any request.
    problems: list[str] = []
    sources: list[_Source] = []
    for store, filename in SOURCE_FILES.items():
        path = home / filename
        if not path.exists():
            report.missing_files.append(filename)
            continue
        source = _load_file(path, store, problems)
        if source is not None:
            sources.append(source)
    if problems:
        raise MigrationInputError(problems)

    if isinstance(connection_or_settings, Connection):
        return _migrate(connection_or_settings, sources, report, prefixes or {}, batch_size)
    with Connection(connection_or_settings) as connection:
        return _migrate(connection, sources, report, prefixes or {}, batch_size)


def _migrate(
    connection: Connection,
    sources: list[_Source],
    report: MigrationReport,
    prefixes: Mapping[str, str],
    batch_size: int,
) -> MigrationReport:
    # 2. Read the targets (a missing table raises here, before any write), plan every table.
    plans: list[_Plan] = []
    for source in sources:
        store = _store_for(connection, source.store, prefixes)
        known = DEFAULT_STORES[source.store].collections
        for name, documents in source.collections.items():
            if name in known:
                continue
            reason = (
                "documents Parlant's loader refused (one collection for the whole file); "
                "fix them and load them with `import` if they are still wanted"
                if name == FAILED_MIGRATIONS
                else f"not a collection of Parlant's {source.store} store"
            )
            report.ignored.append(
                {
                    "file": source.path.name,
                    "collection": name,
                    "documents": len(documents),
                    "reason": reason,
                }
            )
        # metadata first: a run cut short leaves a store Parlant recognizes.
        order = [METADATA_COLLECTION] + [c for c in known if c != METADATA_COLLECTION]
        for name in order:
            documents = source.collections.get(name, [])
            collection = store.collection(name)
            entry = TableReport(
                store=source.store,
                collection=name,
                table=table_name(store.prefix, name),
                source=str(source.path),
                read=len(documents),
            )
            planner = _plan_metadata if name == METADATA_COLLECTION else _plan_documents
            new = planner(collection, documents, entry) if documents else []
            report.tables.append(entry)
            plans.append(_Plan(entry, collection, new))
    # 3. Write (or, in a dry run, count what would be written).
    for plan in plans:
        if report.dry_run:
            plan.report.written = len(plan.new)
        elif plan.new:
            _write(plan, batch_size)
    return report
