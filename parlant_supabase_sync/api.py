"""Synchronous inspection API for scripts, notebooks and the REPL (no event loop, no Parlant)::

    from parlant_supabase_sync import connect
    with connect() as db:                                   # SUPABASE_URL / SUPABASE_KEY from the environment
        print(db.store("sessions").collection("events").count({"session_id": {"$eq": "s1"}}))

`connect()` gives a `Connection`; `db.store(key_or_prefix)` a `Store`; `.collection(name)` a
`Collection` with `find`, `find_one`, `count`, `get`, `insert`, `update`, `delete` and iteration
over every document in pages. Filters are Parlant `Where` dicts. `db.stores()`/`db.tables()`
tell which tables exist with one request. The `parlant-supabase-sync` CLI is a thin layer over
this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ._types import Cursor, FindResult, ObjectId, SortDirection
from .core import count_rows, read_rows, schema_report
from .ddl_functions import (
    FAILED_KEY,
    FIND_FUNCTION,
    FUNCTION_NAMES,
    RECEIPTS_TABLE,
    REPORT_FUNCTION,
    WRITE_FUNCTION,
)
from .errors import (
    AuthenticationError,
    ConfigurationError,
    DuplicateDocument,
    FunctionMissing,
    InvalidDocument,
    PermissionDenied,
    SupabaseSyncError,
    TableMissing,
)
from .naming import (
    DEFAULT_STORES,
    METADATA_COLLECTION,
    TableNames,
    table_names,
    validate_prefix,
)
from .transport import Expect, Transport

if TYPE_CHECKING:
    import httpx
    from typing_extensions import Self

    from .core import SyncDocumentCollection, SyncDocumentDatabase
    from .settings import SupabaseSettings

__all__ = [
    "CheckReport",
    "Collection",
    "CollectionInfo",
    "Connection",
    "FailedDocument",
    "ImportReport",
    "OverviewRow",
    "RestoreResult",
    "SchemaReport",
    "Store",
    "StoreInfo",
    "TableStatus",
    "connect",
    "decode_cursor",
    "encode_cursor",
    "schema_sql",
]

SortSpec = str | Sequence[tuple[str, str | SortDirection]] | None
CursorLike = Cursor | str | None

# The adapter's SQL functions (ARCHITECTURE.md, "SQL functions"); used when the report
# function itself is missing and each object has to be probed.
SCHEMA_REPORT_FUNCTION = REPORT_FUNCTION
FUNCTIONS = FUNCTION_NAMES
REQUIRED_FIELDS = ("id", "creation_utc", "version")
# Collations that order strings by code point, as Python and Parlant's Transient database do.
CODE_POINT_COLLATIONS = frozenset({"c", "posix", "c.utf8"})
_LOOKUP_CHUNK = 100


class _Progress(Protocol):
    def advance(self, n: int = 1) -> None: ...


# --- cursors -------------------------------------------------------------------------------


def encode_cursor(cursor: Cursor) -> str:
    """The cursor as Parlant's API spells it: base64 of ``creation_utc|id``."""
    return base64.b64encode(f"{cursor.creation_utc}|{cursor.id}".encode()).decode()


def decode_cursor(text: str) -> Cursor:
    """Parse a cursor printed by `encode_cursor` (or Parlant's API); raises ConfigurationError."""
    try:
        creation_utc, doc_id = base64.b64decode(text.encode(), validate=True).decode().split("|", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ConfigurationError(
            f"invalid cursor {text!r}: pass the value printed after `--cursor` by a previous page"
        ) from None
    return Cursor(creation_utc=creation_utc, id=ObjectId(doc_id))


def _cursor(value: CursorLike) -> Cursor | None:
    if value is None or isinstance(value, Cursor):
        return value
    return decode_cursor(value)


def _sort(spec: SortSpec) -> list[tuple[str, SortDirection]]:
    if spec is None:
        return []
    items: Sequence[Any] = [spec] if isinstance(spec, str) else spec
    result: list[tuple[str, SortDirection]] = []
    for item in items:
        if isinstance(item, str):
            name, _, direction = item.partition(":")
        else:
            name, direction = item
        if isinstance(direction, SortDirection):
            result.append((name, direction))
            continue
        text = (direction or "asc").lower()
        if not name or text not in ("asc", "desc"):
            raise ConfigurationError(
                f"invalid sort {item!r}: use 'field', 'field:asc' or 'field:desc'"
            )
        result.append((name, SortDirection.DESC if text == "desc" else SortDirection.ASC))
    return result


def _natural_order(sort: list[tuple[str, SortDirection]]) -> tuple[bool, SortDirection | None]:
    """(True, direction) when `sort` is the core's (creation_utc, id) order, else (False, None)."""
    if not sort:
        return True, None
    directions = {d for _, d in sort}
    names = [n for n, _ in sort]
    if len(directions) == 1 and names in (["creation_utc"], ["creation_utc", "id"]):
        return True, directions.pop()
    return False, None


def _canonical(document: Mapping[str, Any]) -> str:
    # Python's == says True == 1; documents are compared as JSON text instead.
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _digest(document: Mapping[str, Any]) -> bytes:
    return hashlib.blake2b(_canonical(document).encode(), digest_size=16).digest()


@dataclass
class _Batch:
    """The lines of one import batch, until it is written or refused."""

    lines: int = 0
    invalid: bool = False
    duplicates: int = 0
    documents: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    added_ids: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


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


# --- reports -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableStatus:
    """Whether a table exists, was made by (or upgraded for) the adapter, and has RLS on.

    `access`: the key's role may select/insert/update/delete. None when the database could
    not tell (no report function). `policies`: the table's row-level-security policies, each
    `{"name", "roles", "cmd", "permissive"}`; `grants`: the privileges each browser role
    (`anon`, `authenticated`, `public` for PUBLIC) holds on it. Both None when unknown.
    """

    exists: bool
    adapter: bool | None = None
    rls: bool | None = None
    access: bool | None = None
    policies: list[dict[str, Any]] | None = None
    grants: dict[str, list[str]] | None = None

    @classmethod
    def from_report(cls, raw: Any, *, exists: bool | None = None) -> TableStatus:
        """A status from one table entry of `parlant_schema_report`'s answer."""
        entry = raw if isinstance(raw, dict) else {}
        policies = entry.get("policies")
        grants = entry.get("grants")
        return cls(
            exists=bool(entry.get("exists")) if exists is None else exists,
            adapter=entry.get("adapter"),
            rls=entry.get("rls"),
            access=entry.get("access"),
            policies=[dict(p) for p in policies if isinstance(p, dict)]
            if isinstance(policies, list)
            else None,
            grants={str(role): [str(x) for x in held] for role, held in grants.items()
                    if isinstance(held, list)}
            if isinstance(grants, dict)
            else None,
        )


@dataclass(frozen=True)
class SchemaReport:
    """Tables and adapter functions present in the database (`functions_known` False: probed).

    From a current report function also: the receipts table's RLS, policies and grants
    (`receipts_table`, None when missing or unknown), which browser roles may execute each
    function (`function_grants`: name → {role: bool}, None for a missing function; the whole
    mapping None when the report function is from an older release) and which functions of
    earlier releases are still there (`legacy_functions`).
    """

    tables: dict[str, TableStatus]
    functions: dict[str, bool]
    from_report_function: bool = True
    receipts_table: TableStatus | None = None
    function_grants: dict[str, dict[str, bool] | None] | None = None
    legacy_functions: list[str] = field(default_factory=list)
    collation: str | None = None  # the database's default collation (datcollate)

    @classmethod
    def from_report(cls, raw: Any, names: Sequence[str]) -> SchemaReport:
        """The report for `names` from `parlant_schema_report`'s answer."""
        report = raw if isinstance(raw, dict) else {}
        raw_tables = report.get("tables")
        raw_tables = raw_tables if isinstance(raw_tables, dict) else {}
        tables = {name: TableStatus.from_report(raw_tables.get(name)) for name in names}
        functions = {name: True for name in FUNCTIONS}
        if isinstance(report.get("functions"), dict):
            functions.update({str(k): bool(v) for k, v in report["functions"].items()})
        if report.get("receipts") is False:
            # parlant_write's receipts table comes with the functions' SQL.
            functions[RECEIPTS_TABLE] = False
        receipts = report.get("receipts_table")
        grants = report.get("function_grants")
        legacy = report.get("legacy_functions")
        return cls(
            tables,
            functions,
            receipts_table=TableStatus.from_report(receipts, exists=True)
            if isinstance(receipts, dict)
            else None,
            function_grants={
                str(fn): {str(role): bool(v) for role, v in roles.items()}
                if isinstance(roles, dict)
                else None
                for fn, roles in grants.items()
            }
            if isinstance(grants, dict)
            else None,
            legacy_functions=[str(fn) for fn, present in legacy.items() if present]
            if isinstance(legacy, dict)
            else [],
            collation=str(report["collation"]) if report.get("collation") else None,
        )

    def exposures(self, schema: str, prefix_options: str = "") -> tuple[dict[str, list[str]], str]:
        """What lets anon, authenticated or PUBLIC reach adapter objects beyond the chosen anon
        policy (object → problems), and the sentence saying which command fixes it.

        The mode cannot be read from the database, so "none" is expected unless the
        per-customer policy is there: then authenticated may SELECT (and nothing else) on the
        tables that carry it. Anything else counts: RLS off, any other permissive policy, any
        privilege of anon or PUBLIC, EXECUTE on an adapter function for a browser role.
        """
        from .ddl import PER_CUSTOMER_POLICY
        from .naming import truncate_identifier
        from .sqltext import quote_ident

        def _role_order(role: str) -> tuple[int, str]:
            # anon, authenticated, public first (a jsonb object keeps its keys in another order).
            order = ("anon", "authenticated", "public")
            return (order.index(role) if role in order else len(order), role)

        exposed: dict[str, list[str]] = {}
        seed_policies = False
        foreign_policies: list[str] = []
        per_customer = False
        statuses = [(name, status) for name, status in self.tables.items() if status.exists]
        if self.receipts_table is not None:
            statuses.append((RECEIPTS_TABLE, self.receipts_table))
        for name, status in statuses:
            problems: list[str] = []
            if status.adapter is False and name != RECEIPTS_TABLE:
                continue  # not ours (yet): the upgrade step comes first
            if status.rls is False:
                problems.append(f"row-level security is off on {name}")
            allows_customers = False
            for policy in status.policies or []:
                if not policy.get("permissive", True):
                    continue  # a restrictive policy only narrows what permissive ones allow
                if (
                    name != RECEIPTS_TABLE
                    and policy.get("name") == PER_CUSTOMER_POLICY
                    and policy.get("cmd") == "SELECT"
                    and policy.get("roles") == ["authenticated"]
                ):
                    allows_customers = per_customer = True
                    continue
                who = ", ".join(str(r) for r in policy.get("roles") or []) or "public"
                problems.append(
                    f"policy {policy.get('name')!r} on {name} lets {who} {policy.get('cmd')}"
                )
                if policy.get("name") == truncate_identifier(f"Allow all operations on {name}"):
                    seed_policies = True
                else:
                    foreign_policies.append(
                        f"DROP POLICY {quote_ident(str(policy.get('name')))} ON "
                        f"{quote_ident(schema)}.{quote_ident(name)};"
                    )
            grants = status.grants or {}
            for role in sorted(grants, key=_role_order):
                held = grants[role]
                extra = [
                    privilege
                    for privilege in held
                    if not (allows_customers and role == "authenticated" and privilege == "SELECT")
                ]
                if extra:
                    problems.append(f"{role} holds {', '.join(extra)} on {name}")
            if problems:
                exposed[name] = problems
        for function, callers in (self.function_grants or {}).items():
            can = sorted((r for r, allowed in (callers or {}).items() if allowed), key=_role_order)
            if can:
                exposed.setdefault(function, []).append(f"{', '.join(can)} may execute {function}")
        if seed_policies:
            command = f"parlant-supabase-sync sql{prefix_options} --upgrade > upgrade.sql"
            effect = "it drops the older adapter's allow-all policies, enables RLS and revokes the rest"
        elif per_customer:
            command = (
                f"parlant-supabase-sync sql{prefix_options} --anon-policy per-customer > schema.sql"
            )
            effect = "it enables RLS and revokes everything but the per-customer read"
        else:
            command = f"parlant-supabase-sync sql{prefix_options} > schema.sql"
            effect = "it enables RLS and revokes what anon and authenticated hold"
        fix = f"Run `{command}` and execute it in the Supabase SQL editor ({effect})"
        if foreign_policies:
            fix += "; the other policies are not the adapter's: drop them with " + " ".join(
                foreign_policies
            )
        return exposed, fix


@dataclass(frozen=True)
class CollectionInfo:
    """One collection of a store and the state of its tables."""

    name: str
    table: str
    failed_table: str | None
    exists: bool
    failed_exists: bool | None
    adapter: bool | None
    rls: bool | None


@dataclass(frozen=True)
class StoreInfo:
    """A store (table prefix) and its collections."""

    key: str | None
    prefix: str
    collections: list[CollectionInfo]


@dataclass(frozen=True)
class OverviewRow:
    """One line of `ls`."""

    store: str
    collection: str
    table: str
    exists: bool
    documents: int | None
    failed: int | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class CheckReport:
    """What `check` found, and the one next step."""

    url: str
    schema: str
    key_kind: str
    key_role: str | None
    tables: dict[str, TableStatus]
    functions: dict[str, bool]
    missing_tables: list[str]
    missing_functions: list[str]
    not_upgraded: list[str]
    no_access: list[str]
    notes: list[str]
    next_step: str
    ok: bool
    prefixes: list[str] = field(default_factory=list)
    #: What lets a browser role (anon, authenticated, PUBLIC) past the adapter's own access:
    #: object (table or function) → one line per problem. Empty when locked down.
    exposed: dict[str, list[str]] = field(default_factory=dict)
    #: Functions of earlier releases still in the database (run `sql --upgrade`).
    legacy_functions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (never contains the key)."""
        data = asdict(self)
        data["tables"] = {name: asdict(status) for name, status in self.tables.items()}
        return data

    def rows(self) -> list[dict[str, Any]]:
        """One row per table and function, for the human-readable table."""
        rows: list[dict[str, Any]] = [
            {
                "object": "key",
                "name": self.key_kind,
                "present": "",
                "adapter": "",
                "rls": "",
                "detail": f"role {self.key_role or 'unknown'}",
            }
        ]
        for name, status in self.tables.items():
            rows.append(
                {
                    "object": "table",
                    "name": name,
                    "present": "yes" if status.exists else "MISSING",
                    "adapter": _yes_no(status.adapter) if status.exists else "",
                    "rls": _yes_no(status.rls) if status.exists else "",
                    "detail": "; ".join(self.exposed.get(name, [])),
                }
            )
        for name, present in self.functions.items():
            rows.append(
                {
                    "object": "function",
                    "name": name,
                    "present": "yes" if present else "MISSING",
                    "adapter": "",
                    "rls": "",
                    "detail": "; ".join(self.exposed.get(name, [])),
                }
            )
        for name, problems in self.exposed.items():
            if name not in self.tables and name not in self.functions:
                rows.append(
                    {
                        "object": "table",
                        "name": name,
                        "present": "yes",
                        "adapter": "",
                        "rls": "",
                        "detail": "; ".join(problems),
                    }
                )
        for name in self.legacy_functions:
            rows.append(
                {
                    "object": "function",
                    "name": name,
                    "present": "OLD",
                    "adapter": "",
                    "rls": "",
                    "detail": "from an earlier release; `sql --upgrade` drops it",
                }
            )
        return rows


def _yes_no(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


@dataclass(frozen=True)
class FailedDocument:
    """A row of a failed-migrations table."""

    collection: str
    id: str | None
    failed_utc: str | None
    document: Any

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class RestoreResult:
    """The outcome of restoring one failed document."""

    id: str
    restored: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class ImportReport:
    """Counts and problems of one `import_jsonl` run."""

    inserted: int = 0
    skipped_identical: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[dict[str, Any]] = field(default_factory=list)
    batches_refused: int = 0
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        """True when every line was imported or already present unchanged."""
        return not self.conflicts and not self.invalid and self.stopped is None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def problems(self, limit: int = 20) -> list[str]:
        """Human-readable problem lines (at most `limit`, then a count of the rest)."""
        lines = [f"line {p['line']}: {p['error']}" for p in self.invalid]
        lines += [
            f"line {c['line']}: id {c['id']!r} already exists with different content (not imported)"
            for c in self.conflicts
        ]
        if self.stopped:
            lines.append(self.stopped)
        if len(lines) > limit:
            lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
        return lines

    def summary(self) -> str:
        """One line with the counts."""
        text = (
            f"imported {self.inserted}, skipped {self.skipped_identical} identical, "
            f"{len(self.conflicts)} conflicting, {len(self.invalid)} invalid line(s)"
        )
        if self.invalid:
            text += (
                f"; {self.batches_refused} batch(es) with invalid lines were not written: fix the "
                "lines and run the same import again (finished documents are skipped)"
            )
        return text


# --- collections and stores ----------------------------------------------------------------


class Collection:
    """One collection (table) of a store; every method is one or a few HTTP requests."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name
        names: TableNames = table_names(store.prefix, name)
        self.table = names.main
        self.failed_table = names.failed
        self._core: SyncDocumentCollection | None = None

    def __repr__(self) -> str:
        return f"<Collection {self.name!r} table={self.table!r}>"

    @property
    def _transport(self) -> Transport:
        return self.store.connection.transport

    @property
    def core(self) -> SyncDocumentCollection:
        """The core collection object (created on first use; sends no request)."""
        if self._core is None:
            from .core import SyncDocumentCollection

            # Not `get_collection`: its loader pass scans every document once per process,
            # and inspecting must neither cost a full scan nor migrate anything. A missing
            # table shows up as TableMissing on the first request instead.
            database = self.store.database
            self._core = SyncDocumentCollection(
                database, self.name, dict, database.table_for(self.name)
            )
        return self._core

    # reads

    def find(
        self,
        where: Mapping[str, Any] | None = None,
        limit: int | None = None,
        cursor: CursorLike = None,
        sort: SortSpec = None,
    ) -> FindResult[Any]:
        """One page of matches, ordered by (creation_utc, id) unless `sort` says otherwise.

        `sort`: "field", "field:desc" or [(field, "asc"|"desc"|SortDirection), ...]; `cursor`
        (a `Cursor` or its `encode_cursor` text) works with the default order only.
        """
        keys = _sort(sort)
        natural, direction = _natural_order(keys)
        parsed = _cursor(cursor)
        if natural:
            return self.core.find(
                dict(where or {}), limit=limit, cursor=parsed, sort_direction=direction
            )
        if parsed is not None:
            raise ConfigurationError(
                "a cursor pages through the default (creation_utc, id) order only; drop the "
                "sort or the cursor"
            )
        return self._find_sorted(dict(where or {}), limit, keys)

    def find_one(
        self, where: Mapping[str, Any] | None = None, sort: SortSpec = None
    ) -> dict[str, Any] | None:
        """The first match (by `sort`, when given), or None."""
        keys = _sort(sort)
        return self.core.find_one(dict(where or {}), sort=keys or None)

    def get(self, id: str) -> dict[str, Any] | None:
        """The document with this id, or None."""
        return self.core.find_one({"id": {"$eq": id}})

    def count(self, where: Mapping[str, Any] | None = None) -> int:
        """How many documents match (all when `where` is None)."""
        return self.core.count(dict(where or {}))

    def rows(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        sort: SortSpec = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching document, fetched page by page (constant memory)."""
        from .filters import encode_where

        keys = _sort(sort)
        natural, direction = _natural_order(keys)
        filters = dict(where or {})
        encode_where(filters)  # a bad filter raises here, not at the first next()
        if natural and direction is not SortDirection.DESC:
            return self.core.iter_documents(filters, page_size=page_size)
        return self._iter_sorted(filters, keys or [("creation_utc", SortDirection.DESC)], page_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.rows()

    # writes

    def insert(self, document: Mapping[str, Any]) -> None:
        """Insert one document; raises DuplicateDocument when the id exists."""
        self.core.insert_one(dict(document))

    def update(
        self, where: Mapping[str, Any] | str, params: Mapping[str, Any], *, upsert: bool = False
    ) -> dict[str, Any] | None:
        """Merge `params` into the first match (a `Where`, or an id); returns the new document."""
        result = self.core.update_one(_where(where), dict(params), upsert=upsert)
        document: dict[str, Any] | None = result.updated_document
        return document

    def delete(self, where: Mapping[str, Any] | str) -> dict[str, Any] | None:
        """Delete the first match (a `Where`, or an id); returns the deleted document or None."""
        result = self.core.delete_one(_where(where))
        document: dict[str, Any] | None = result.deleted_document
        return document

    def insert_many(self, documents: Sequence[Mapping[str, Any]]) -> None:
        """Insert documents in one request: all are written or none."""
        if documents:
            self.core.insert_many(documents)

    def import_jsonl(
        self,
        lines: Iterable[str],
        *,
        batch_size: int = 500,
        progress: _Progress | None = None,
    ) -> ImportReport:
        """Load JSON lines: identical documents are skipped, different ones with a known id reported.

        Lines are taken in batches of `batch_size`; each batch is validated fully before it is
        written (one request: all or nothing). A batch holding an invalid line is not written;
        later batches are still checked and written, so a re-run after fixing the lines
        finishes the job (documents already imported are skipped).
        """
        report = ImportReport()
        # id → digest of the document as first seen in a written batch (or the current one);
        # digests keep memory per document small.
        seen: dict[str, bytes] = {}
        state = _Batch()

        def flush() -> None:
            if state.invalid:
                report.batches_refused += 1
                for doc_id in state.added_ids:
                    seen.pop(doc_id, None)
            elif state.lines:
                report.skipped_identical += state.duplicates
                report.conflicts.extend(state.conflicts)
                self._import_batch(state.documents, report)
                if progress is not None:
                    progress.advance(state.lines)
            state.reset()

        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            state.lines += 1
            document, error = _parse_line(line)
            if error is not None or document is None:
                report.invalid.append({"line": number, "error": error})
                state.invalid = True
            else:
                doc_id = document["id"]
                digest = _digest(document)
                previous = seen.get(doc_id)
                if previous is None:
                    seen[doc_id] = digest
                    state.added_ids.append(doc_id)
                    state.documents.append((number, document))
                elif previous == digest:
                    state.duplicates += 1
                else:
                    state.conflicts.append({"line": number, "id": doc_id})
            if state.lines >= batch_size:
                flush()
        flush()
        return report

    def _import_batch(self, batch: list[tuple[int, dict[str, Any]]], report: ImportReport) -> None:
        ids = [doc["id"] for _, doc in batch]
        existing: dict[str, str] = {}
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            for found in self.core.find({"id": {"$in": chunk}}).items:
                existing[found["id"]] = _canonical(found)
        new: list[dict[str, Any]] = []
        for number, doc in batch:
            current = existing.get(doc["id"])
            if current is None:
                new.append(doc)
            elif current == _canonical(doc):
                report.skipped_identical += 1
            else:
                report.conflicts.append({"line": number, "id": doc["id"]})
        self.insert_many(new)
        report.inserted += len(new)

    # failed migrations

    def failed(self) -> Iterator[FailedDocument]:
        """Rows of this collection's failed-migrations table (empty for `metadata`)."""
        if self.failed_table is None:
            return
        page = self.store.connection.settings.page_size
        after: list[tuple[str, str]] = []
        while True:
            # Keyset on the table's unique key: rows added or removed meanwhile never make a
            # page skip or repeat one (ids are not unique there).
            rows = read_rows(
                self._transport,
                "failed",
                self.failed_table,
                after,
                order=f"{FAILED_KEY}.asc",
                limit=page,
            )
            if not rows:  # a short page may be the server's max-rows cap: only empty ends it
                return
            for row in rows:
                yield FailedDocument(
                    self.name, row.get("id"), row.get("failed_utc"), row.get("data")
                )
            after = [(FAILED_KEY, f"gt.{rows[-1][FAILED_KEY]}")]

    def restore_failed(self, ids: Iterable[str]) -> list[RestoreResult]:
        """Move documents back from the failed-migrations table (after they were fixed).

        Each is validated, inserted, and removed from the failed table only after the insert
        succeeded. Parlant runs its migration loader over it at the next start.
        """
        if self.failed_table is None:
            raise ConfigurationError("the metadata collection has no failed-migrations table")
        return [self._restore_one(doc_id) for doc_id in dict.fromkeys(ids)]

    def _restore_one(self, doc_id: str) -> RestoreResult:
        assert self.failed_table is not None
        rows = read_rows(self._transport, "restore", self.failed_table, [("id", f"eq.{doc_id}")])
        if not rows:
            return RestoreResult(doc_id, False, f"not in {self.failed_table}")
        versions = {
            _canonical(r["data"]) if isinstance(r.get("data"), dict) else repr(r.get("data"))
            for r in rows
        }
        if len(versions) > 1:
            return RestoreResult(
                doc_id,
                False,
                f"{len(rows)} different rows with this id in {self.failed_table}; delete the unwanted ones first",
            )
        raw: Any = rows[0].get("data")
        problem = check_shape(raw)
        if problem is None and raw["id"] != doc_id:
            problem = f"its 'id' field is {raw['id']!r}, not {doc_id!r}"
        if problem is not None or not isinstance(raw, dict):
            return RestoreResult(
                doc_id, False, f"not restored: {problem}; fix the row in {self.failed_table} first"
            )
        document: dict[str, Any] = raw
        current = self.get(doc_id)
        if current is not None and _canonical(current) != _canonical(document):
            return RestoreResult(
                doc_id,
                False,
                f"{self.table} already holds a different document with this id; delete it first to restore",
            )
        if current is None:
            try:
                self.insert(document)
            except DuplicateDocument:
                return RestoreResult(
                    doc_id, False, f"{self.table} got a document with this id meanwhile"
                )
        self.store.database.write("restore", self.failed_table, "delete_many", {"ids": [doc_id]})
        return RestoreResult(
            doc_id, True, "restored" if current is None else "already present; removed from failed"
        )

    # sorted listings: keyset pages on (sort keys, creation_utc, id), past any max-rows cap

    def _find_sorted(
        self, where: dict[str, Any], limit: int | None, keys: list[tuple[str, SortDirection]]
    ) -> FindResult[Any]:
        if limit is None:
            items = list(self._iter_sorted(where, keys, None))
            return FindResult(items=items, total_count=len(items), has_more=False)
        page = self.store.connection.settings.page_size
        items, total = self.core.find_sorted(where, keys, min(limit, page), count=True)
        total = total or 0
        while len(items) < min(limit, total):
            more, _ = self.core.find_sorted(
                where, keys, min(limit - len(items), page), after=items[-1]
            )
            if not more:
                break
            items.extend(more)
        return FindResult(items=items, total_count=total, has_more=total > len(items))

    def _iter_sorted(
        self, where: dict[str, Any], keys: list[tuple[str, SortDirection]], page_size: int | None
    ) -> Iterator[dict[str, Any]]:
        page = page_size or self.store.connection.settings.page_size
        after: dict[str, Any] | None = None
        while True:
            rows, _ = self.core.find_sorted(where, keys, page, after=after)
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1]


def _where(where: Mapping[str, Any] | str) -> dict[str, Any]:
    return {"id": {"$eq": where}} if isinstance(where, str) else dict(where)


def _parse_line(line: str) -> tuple[dict[str, Any] | None, str | None]:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON (jsonb has no NaN/Infinity)")

    try:
        document = json.loads(line, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    except ValueError as exc:
        return None, str(exc)
    problem = check_shape(document)
    return (None, problem) if problem else (document, None)


class Store:
    """The collections under one table prefix (one Parlant store)."""

    def __init__(
        self, connection: Connection, key: str | None, prefix: str, collections: Sequence[str]
    ) -> None:
        self.connection = connection
        self.key = key
        self.prefix = prefix
        self.collections: tuple[str, ...] = tuple(collections)
        self._database: SyncDocumentDatabase | None = None
        self._open: dict[str, Collection] = {}

    def __repr__(self) -> str:
        return f"<Store {self.key or self.prefix!r} prefix={self.prefix!r}>"

    @property
    def database(self) -> SyncDocumentDatabase:
        """The core database for this prefix (created on first use, closed with the connection)."""
        if self._database is None:
            from .core import SyncDocumentDatabase

            self._database = SyncDocumentDatabase(
                table_prefix=self.prefix, transport=self.connection.transport
            )
        return self._database

    def collection(self, name: str) -> Collection:
        """A handle on one collection (no request until it is used)."""
        if name not in self._open:
            self._open[name] = Collection(self, name)
        return self._open[name]

    def __getitem__(self, name: str) -> Collection:
        return self.collection(name)

    def failed_collections(self) -> list[str]:
        """The collections that have a failed-migrations table."""
        return [c for c in self.collections if c != METADATA_COLLECTION]

    def close(self) -> None:
        """Close the core database (not the shared HTTP client)."""
        if self._database is not None:
            self._database.close()
            self._database = None


def _resolve_store(name: str) -> tuple[str | None, str, tuple[str, ...]]:
    spec = DEFAULT_STORES.get(name)
    if spec is not None:
        return name, spec.prefix, spec.collections
    if not name:
        raise ConfigurationError(
            "empty store name: use sessions, customers, context_variables or a table prefix"
        )
    if "=" in name:
        # `myapp_=sessions`: a custom prefix for a known store whose name does not tell it.
        prefix, _, key = name.partition("=")
        if key not in DEFAULT_STORES:
            raise ConfigurationError(
                f"unknown store {key!r} in {name!r}: use PREFIX=STORE with STORE one of {', '.join(DEFAULT_STORES)}"
            )
        collections = DEFAULT_STORES[key].collections
        validate_prefix(prefix, collections)
        return None, prefix, collections
    for key, spec in DEFAULT_STORES.items():
        if spec.prefix == name:
            return key, spec.prefix, spec.collections
    try:
        validate_prefix(name)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"unknown store {name!r}: use one of {', '.join(DEFAULT_STORES)} or a table prefix ({exc})"
        ) from None
    # A custom prefix names its store by its main collection (`acme_sessions_`, like the defaults).
    for key, spec in DEFAULT_STORES.items():
        if name.rstrip("_").endswith(spec.collections[0]):
            return None, name, spec.collections
    return None, name, ()


class Connection:
    """A connection to one Supabase project (one shared HTTP client); use as a context manager."""

    def __init__(
        self, settings: SupabaseSettings, *, http_client: httpx.Client | None = None
    ) -> None:
        self.settings = settings
        self.transport = Transport(settings, http_client)
        self.http: httpx.Client = self.transport.http
        self._stores: dict[str, Store] = {}

    def __repr__(self) -> str:
        return f"<Connection url={self.settings.url!r} schema={self.settings.db_schema!r}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every store and the HTTP client (if this connection created it)."""
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        self.transport.close()

    def store(self, name: str) -> Store:
        """A store by key (`sessions`, `customers`, `context_variables`) or by table prefix."""
        key, prefix, collections = _resolve_store(name)
        if prefix not in self._stores:
            self._stores[prefix] = Store(self, key, prefix, collections)
        return self._stores[prefix]

    def __getitem__(self, name: str) -> Store:
        return self.store(name)

    def schema_report(self, tables: Iterable[str]) -> SchemaReport:
        """Which of `tables` and the adapter functions exist: one RPC (a probe per table if
        the report function itself is missing, e.g. on a database set up by the older SQL)."""
        names = list(dict.fromkeys(tables))
        try:
            raw = schema_report(self.transport, names)
        except FunctionMissing:
            return self._probe(names)
        except SupabaseSyncError as exc:
            # 42883 undefined_function: the function was dropped but the server's schema
            # cache still listed it (PostgREST reloads its cache asynchronously after DDL).
            if exc.code != "42883":
                raise
            return self._probe(names)
        raw_tables = raw.get("tables", {}) if isinstance(raw, dict) else {}
        statuses = {
            name: TableStatus(
                exists=bool((raw_tables.get(name) or {}).get("exists")),
                adapter=(raw_tables.get(name) or {}).get("adapter"),
                rls=(raw_tables.get(name) or {}).get("rls"),
                access=(raw_tables.get(name) or {}).get("access"),
            )
            for name in names
        }
        functions = {name: True for name in FUNCTIONS}
        if isinstance(raw, dict) and isinstance(raw.get("functions"), dict):
            functions.update({str(k): bool(v) for k, v in raw["functions"].items()})
        if raw.get("receipts") is False:
            # parlant_write's receipts table comes with the functions' SQL.
            functions[RECEIPTS_TABLE] = False
        return SchemaReport(statuses, functions)

    def _probe(self, names: list[str]) -> SchemaReport:
        statuses: dict[str, TableStatus] = {}
        for name in names:
            try:
                read_rows(self.transport, "probe", name, [], limit=0)
                statuses[name] = TableStatus(exists=True)
            except TableMissing:
                statuses[name] = TableStatus(exists=False)
            except PermissionDenied:
                statuses[name] = TableStatus(exists=True, access=False)
        functions = {SCHEMA_REPORT_FUNCTION: False}
        # Arguments each function refuses (P0001) before it touches anything: the probe
        # writes and reads nothing.
        probes: dict[str, dict[str, Any]] = {
            WRITE_FUNCTION: {"p_request_id": "", "p_table": "", "p_operation": "", "p_args": {}},
            FIND_FUNCTION: {"p_table": ""},
        }
        for function, body in probes.items():
            try:
                self.transport.send(
                    "probe", self.transport.rpc(function, body), function=function,
                    expect=Expect.OBJECT,
                )
                functions[function] = True
            except FunctionMissing:
                functions[function] = False
            except AuthenticationError:
                raise
            except SupabaseSyncError as exc:
                functions[function] = exc.code != "42883"  # see schema_report
        return SchemaReport(statuses, functions, from_report_function=False)

    def _store_list(self, names: Iterable[str] | None) -> list[Store]:
        stores = [self.store(n) for n in (names or DEFAULT_STORES)]
        for store in stores:
            if not store.collections:
                raise ConfigurationError(_unknown_layout(store.prefix))
        return stores

    def stores(self, names: Iterable[str] | None = None) -> list[StoreInfo]:
        """The stores (default: the three Parlant stores), their collections and table state."""
        stores = self._store_list(names)
        report = self.schema_report(_tables_of(stores))
        result = []
        for store in stores:
            infos = []
            for name in store.collections:
                pair = table_names(store.prefix, name)
                main = report.tables[pair.main]
                failed = report.tables.get(pair.failed) if pair.failed else None
                infos.append(
                    CollectionInfo(
                        name,
                        pair.main,
                        pair.failed,
                        main.exists,
                        failed.exists if failed else None,
                        main.adapter,
                        main.rls,
                    )
                )
            result.append(StoreInfo(store.key, store.prefix, infos))
        return result

    def tables(self, names: Iterable[str] | None = None) -> dict[str, TableStatus]:
        """Every table of the stores (default: the three Parlant stores) → its state."""
        return self.schema_report(_tables_of(self._store_list(names))).tables

    def overview(
        self, names: Iterable[str] | None = None, *, counts: bool = True
    ) -> list[OverviewRow]:
        """One row per collection with its document and failed-document counts (for `ls`)."""
        rows = []
        for info in self.stores(names):
            label = info.key or info.prefix
            for c in info.collections:
                documents = count_rows(self.transport, "ls", c.table) if counts and c.exists else None
                failed = (
                    count_rows(self.transport, "ls", c.failed_table)
                    if counts and c.failed_table and c.failed_exists
                    else None
                )
                rows.append(OverviewRow(label, c.name, c.table, c.exists, documents, failed))
        return rows

    def check(self, names: Iterable[str] | None = None) -> CheckReport:
        """Tables, functions and the key's role, with the one next step (for `check`)."""
        from .settings import decode_key_role

        info = decode_key_role(self.settings.key.get_secret_value())
        notes: list[str] = []
        if info.kind == "unknown":
            notes.append(
                "the key has an unknown format (neither sb_secret_/sb_publishable_ nor a JWT)"
            )
        elif info.kind == "legacy_jwt":
            notes.append(
                "legacy JWT key: Supabase deprecates these; prefer a secret key (sb_secret_…)"
            )
            if info.expired():
                notes.append("the key's exp claim is in the past: it will be rejected")
            if (
                info.ref
                and ".supabase.co" in self.settings.url
                and f"//{info.ref}." not in self.settings.url
            ):
                notes.append(
                    f"the key was issued for project {info.ref!r}, not the project in SUPABASE_URL"
                )
        stores = self._store_list(names)
        tables = _tables_of(stores)
        try:
            # As `schema_report`, keeping the privilege part of the answer.
            try:
                report = SchemaReport.from_report(schema_report(self.transport, tables), tables)
            except FunctionMissing:
                report = self._probe(tables)
            except SupabaseSyncError as exc:
                if exc.code != "42883" or isinstance(exc, PermissionDenied):
                    raise
                report = self._probe(tables)
        except PermissionDenied:
            if info.role == "service_role":
                raise
            # A browser-role key may not even call the report function; the key is the problem.
            notes.append(f"the {info.role or 'unknown'} role may not read the schema report")
            report = SchemaReport({}, {}, from_report_function=False)
        if not report.from_report_function and report.tables:
            notes.append("the report function is missing, so adapter/RLS state could not be read")
        if report.collation and report.collation.lower().replace("-", "") not in CODE_POINT_COLLATIONS:
            notes.append(
                f"the database collation is {report.collation!r}, not C.UTF-8 as on hosted Supabase: "
                "strings inside documents (not the id/creation_utc/… columns) compare and sort by "
                "it, so ranges and sorts on them can differ from Parlant's code-point order"
            )
        missing_tables = [n for n, s in report.tables.items() if not s.exists]
        missing_functions = [n for n, ok in report.functions.items() if not ok]
        not_upgraded = [n for n, s in report.tables.items() if s.exists and s.adapter is False]
        no_access = [n for n, s in report.tables.items() if s.exists and s.access is False]
        prefix_options = "" if names is None else "".join(f" --prefix {s.prefix}" for s in stores)
        server_key = info.role == "service_role"
        exposed, fix_command = report.exposures(self.settings.db_schema, prefix_options)
        old_functions = list(report.legacy_functions)
        if report.from_report_function and report.function_grants is None and report.tables:
            # The report function predates the privilege report: the functions are old.
            old_functions.append(SCHEMA_REPORT_FUNCTION)
        if info.role in ("anon", "authenticated"):
            next_step = (
                f"the key runs as {info.role!r}, which the generated SQL grants nothing to: set "
                "SUPABASE_KEY to the secret key (sb_secret_…) or the legacy service_role key"
            )
        elif missing_tables and len(missing_tables) == len(report.tables):
            next_step = (
                f"create the tables: run `parlant-supabase-sync sql{prefix_options} > schema.sql` and "
                "execute schema.sql in the Supabase SQL editor"
            )
        elif not_upgraded or (
            missing_functions and not missing_tables and not report.from_report_function
        ):
            next_step = (
                f"upgrade the tables made by the older adapter's SQL: run `parlant-supabase-sync sql"
                f"{prefix_options} --upgrade > upgrade.sql` and execute upgrade.sql in the Supabase SQL editor"
            )
        elif old_functions:
            next_step = (
                f"the database has SQL functions of an earlier release ({', '.join(old_functions)}): "
                f"run `parlant-supabase-sync sql{prefix_options} --upgrade > upgrade.sql` and execute "
                "upgrade.sql in the Supabase SQL editor (it replaces them and locks the tables down)"
            )
        elif missing_tables:
            next_step = (
                f"create the missing tables ({', '.join(missing_tables)}): run `parlant-supabase-sync sql"
                f"{prefix_options} > schema.sql` and execute schema.sql in the Supabase SQL editor "
                "(it only creates what does not exist)"
            )
        elif exposed:
            problems = [problem for lines in exposed.values() for problem in lines]
            # RLS switched off first: it makes every grant reach every row.
            problems.sort(key=lambda problem: not problem.startswith("row-level security"))
            shown = "; ".join(problems[:3]) + (
                f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
            )
            next_step = (
                f"anon/authenticated can reach {', '.join(exposed)} ({shown}). {fix_command}"
            )
        elif no_access:
            next_step = (
                f"the key's role may not use {', '.join(no_access)} (no table privileges; new Supabase "
                f"projects no longer grant them by default): run `parlant-supabase-sync sql{prefix_options} "
                "--upgrade > upgrade.sql` (it adds the grants) and execute it in the Supabase SQL editor"
            )
        elif missing_functions:
            next_step = (
                "create the SQL functions: run `parlant-supabase-sync sql --functions-only > functions.sql` "
                "and execute functions.sql in the Supabase SQL editor"
            )
        elif not server_key:
            next_step = (
                f"the key's role is {info.role or 'unknown'!s}; use the secret key (sb_secret_…) or the "
                "legacy service_role key so the adapter can reach the tables"
            )
        else:
            next_step = "nothing to do: the database is ready"
        ok = next_step.startswith("nothing to do")
        return CheckReport(
            url=self.settings.url,
            schema=self.settings.db_schema,
            key_kind=info.kind,
            key_role=info.role,
            tables=report.tables,
            functions=report.functions,
            missing_tables=missing_tables,
            missing_functions=missing_functions,
            not_upgraded=not_upgraded,
            no_access=no_access,
            notes=notes,
            next_step=next_step,
            ok=ok,
            prefixes=[s.prefix for s in stores],
            exposed=exposed,
            legacy_functions=old_functions,
        )


def _unknown_layout(prefix: str) -> str:
    return (
        f"cannot tell which Parlant store prefix {prefix!r} is for: end it with the store's main "
        "collection (e.g. acme_sessions_, acme_customers_, acme_variables_) or write "
        f"{prefix}=sessions (or =customers, =context_variables)"
    )


def _tables_of(stores: Iterable[Store]) -> list[str]:
    from .naming import all_table_names

    names: list[str] = []
    for store in stores:
        names.extend(all_table_names(store.prefix, store.collections))
    return names


def connect(
    url: str | None = None,
    key: str | None = None,
    schema: str | None = None,
    **settings: Any,
) -> Connection:
    """Connect to a Supabase project; arguments not given come from the environment
    (SUPABASE_URL, SUPABASE_KEY, SUPABASE_SCHEMA, PARLANT_SUPABASE_*).

    Extra keyword arguments are `SupabaseSettings` fields (e.g. `page_size=500`); pass
    `http_client=` to share an `httpx.Client`.
    """
    from .settings import SupabaseSettings

    http_client = settings.pop("http_client", None)
    overrides = dict(settings)
    if url is not None:
        overrides["url"] = url
    if key is not None:
        overrides["key"] = key
    if schema is not None:
        overrides["db_schema"] = schema
    return Connection(SupabaseSettings.from_env(**overrides), http_client=http_client)


def schema_sql(
    prefixes: Sequence[str] | None = None,
    *,
    functions_only: bool = False,
    upgrade: bool = False,
    anon_policy: str = "none",
    schema: str = "public",
    keep_seed_policies: bool = False,
) -> tuple[str, list[str]]:
    """The SQL for `prefixes` (store keys or table prefixes; default: the three Parlant stores)
    and the generator's warnings (e.g. for `anon_policy="allow-all"`).

    `upgrade=True` drops the older adapter's allow-all policies unless `keep_seed_policies`
    (the upgrade takes no other anon policy: run `sql --anon-policy …` after it)."""
    from . import ddl

    if keep_seed_policies and not upgrade:
        raise ConfigurationError("--keep-seed-policies applies only to --upgrade")
    if upgrade and anon_policy != "none":
        raise ConfigurationError(
            "--anon-policy does not apply to --upgrade (it drops the older adapter's policies; "
            "--keep-seed-policies keeps them): run the upgrade, then "
            f"`parlant-supabase-sync sql --anon-policy {anon_policy}`"
        )
    warnings = []
    warning = ddl.anon_policy_warning(anon_policy)  # type: ignore[arg-type]  # validated inside
    if warning:
        warnings.append(warning)
    if functions_only:
        return ddl.generate_functions(schema=schema), warnings
    stores = _store_layout(prefixes)
    if upgrade:
        seed_warning = ddl.seed_policy_warning(keep_seed_policies)
        if seed_warning:
            warnings.append(seed_warning)
        return ddl.generate_upgrade(
            stores, schema=schema, keep_seed_policies=keep_seed_policies
        ), warnings
    text = ddl.generate_schema(
        stores if stores is not None else ddl.default_stores(),
        anon_policy,  # type: ignore[arg-type]
        schema=schema,
        include_functions=True,
    )
    return text, warnings


def _store_layout(prefixes: Sequence[str] | None) -> dict[str, tuple[str, ...]] | None:
    if not prefixes:
        return None
    layout: dict[str, tuple[str, ...]] = {}
    for name in prefixes:
        _, prefix, collections = _resolve_store(name)
        if not collections:
            raise ConfigurationError(_unknown_layout(prefix))
        layout[prefix] = collections
    return layout
