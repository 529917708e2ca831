"""Is the database ready for the adapter? `check` as a table of rules over one schema report.

`fetch_report` asks `parlant_schema_report` once (or probes each object when that function is
missing); `check` turns the answer into `Facts` and runs `RULES`: every applicable "note" rule
adds a note, the first applicable "error" rule is the one next step. The advice says how to
run the generated SQL where the database is: `psql "$DATABASE_URL" -f FILE` for a loopback
URL (the local stack prints DATABASE_URL), the Supabase SQL editor otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from .core import count_rows, read_rows, schema_report
from .ddl import PER_CUSTOMER_POLICY, allow_all_policy_name
from .ddl_functions import (
    FIND_FUNCTION,
    RECEIPTS_TABLE,
    REPORT_FUNCTION,
    WRITE_FUNCTION,
    SchemaReport,
    TableStatus,
)
from .errors import (
    AuthenticationError,
    FunctionMissing,
    PermissionDenied,
    SupabaseSyncError,
    TableMissing,
    sql_command,
)
from .naming import StoreLayout, table_names, tables_of
from .settings import decode_key_role, is_loopback
from .sqltext import quote_ident
from .transport import Expect
from .vector_ddl import VECTOR_FUNCTION_NAMES, parlant_vector_tables

if TYPE_CHECKING:
    from .settings import KeyInfo, SupabaseSettings
    from .transport import Transport

__all__ = [
    "CODE_POINT_COLLATIONS", "RULES", "CheckReport", "CollectionInfo", "Facts", "OverviewRow",
    "Rule", "SchemaReport", "StoreInfo", "TableStatus", "check", "evaluate", "fetch_report",
    "inventory", "is_local", "overview", "run_sql_advice",
]

# Collations that order strings by code point, as Python and Parlant's Transient database do.
CODE_POINT_COLLATIONS = frozenset({"c", "posix", "c.utf8"})
_UNDEFINED_FUNCTION = "42883"
_BROWSER_ROLES = ("anon", "authenticated", "public")


def fetch_report(transport: Transport, tables: Iterable[str]) -> SchemaReport:
    """Which of `tables` and the adapter functions exist: one RPC (a probe per object if the
    report function itself is missing, e.g. on a database set up by the older SQL)."""
    names = list(dict.fromkeys(tables))
    try:
        return SchemaReport.from_report(schema_report(transport, names), names)
    except FunctionMissing:
        return _probe(transport, names)
    except SupabaseSyncError as exc:
        # 42883 undefined_function: the function was dropped but the server's schema cache
        # still listed it (PostgREST reloads its cache asynchronously after DDL).
        if exc.code != _UNDEFINED_FUNCTION or isinstance(exc, PermissionDenied):
            raise
        return _probe(transport, names)


def _probe(transport: Transport, names: list[str]) -> SchemaReport:
    statuses: dict[str, TableStatus] = {}
    for name in names:
        try:
            read_rows(transport, "probe", name, [], limit=0)
            statuses[name] = TableStatus(exists=True)
        except TableMissing:
            statuses[name] = TableStatus(exists=False)
        except PermissionDenied:
            statuses[name] = TableStatus(exists=True, access=False)
    functions = {REPORT_FUNCTION: False}
    # Arguments each function refuses (P0001) before it touches anything: nothing is written.
    probes: dict[str, dict[str, Any]] = {
        WRITE_FUNCTION: {"p_request_id": "", "p_table": "", "p_operation": "", "p_args": {}},
        FIND_FUNCTION: {"p_table": ""},
    }
    for function, body in probes.items():
        try:
            request = transport.rpc(function, body)
            transport.send("probe", request, function=function, expect=Expect.OBJECT)
            functions[function] = True
        except FunctionMissing:
            functions[function] = False
        except AuthenticationError:
            raise
        except SupabaseSyncError as exc:
            functions[function] = exc.code != _UNDEFINED_FUNCTION  # see fetch_report
    return SchemaReport(statuses, functions, from_report_function=False)


# --- inventory: the stores' tables (for `ls` and `Connection.stores`) ------------------------


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


def inventory(transport: Transport, stores: Sequence[StoreLayout]) -> list[StoreInfo]:
    """The stores, their collections and the state of their tables (one report request)."""
    report = fetch_report(transport, tables_of(stores))
    result = []
    for store in stores:
        infos = []
        for name in store.collections:
            pair = table_names(store.prefix, name)
            main = report.tables[pair.main]
            failed = report.tables.get(pair.failed) if pair.failed else None
            exists = failed.exists if failed else None
            infos.append(
                CollectionInfo(
                    name, pair.main, pair.failed, main.exists, exists, main.adapter, main.rls
                )
            )
        result.append(StoreInfo(store.key, store.prefix, infos))
    return result


def overview(
    transport: Transport, stores: Sequence[StoreLayout], *, counts: bool = True
) -> list[OverviewRow]:
    """One row per collection with its document and failed-document counts (one request each)."""
    rows = []
    for info in inventory(transport, stores):
        for c in info.collections:
            documents = count_rows(transport, "ls", c.table) if counts and c.exists else None
            failed = (
                count_rows(transport, "ls", c.failed_table)
                if counts and c.failed_table and c.failed_exists
                else None
            )
            rows.append(
                OverviewRow(info.key or info.prefix, c.name, c.table, c.exists, documents, failed)
            )
    return rows


# --- exposure: what lets a browser role past the adapter's own access ----------------------


@dataclass(frozen=True)
class Exposure:
    """Objects a browser role can reach (object → problems) and which SQL fixes it."""

    objects: dict[str, list[str]]
    fix: Literal["upgrade", "per-customer", "schema"]
    foreign_policies: list[str]


def _role_order(role: str) -> tuple[int, str]:
    # anon, authenticated, public first (a jsonb object keeps its keys in another order).
    return (_BROWSER_ROLES.index(role) if role in _BROWSER_ROLES else len(_BROWSER_ROLES), role)


def _table_problems(
    name: str, status: TableStatus, schema: str, found: dict[str, Any]
) -> list[str]:
    problems: list[str] = []
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
            allows_customers = found["per_customer"] = True
            continue
        who = ", ".join(str(r) for r in policy.get("roles") or []) or "public"
        problems.append(f"policy {policy.get('name')!r} on {name} lets {who} {policy.get('cmd')}")
        if policy.get("name") == allow_all_policy_name(name):
            found["seed"] = True
        else:
            found["foreign"].append(
                f"DROP POLICY {quote_ident(str(policy.get('name')))} ON "
                f"{quote_ident(schema)}.{quote_ident(name)};"
            )
    grants = status.grants or {}
    for role in sorted(grants, key=_role_order):
        extra = [
            privilege
            for privilege in grants[role]
            if not (allows_customers and role == "authenticated" and privilege == "SELECT")
        ]
        if extra:
            problems.append(f"{role} holds {', '.join(extra)} on {name}")
    return problems


def exposure(report: SchemaReport, schema: str) -> Exposure:
    """What lets anon, authenticated or PUBLIC reach adapter objects beyond the anon policy.

    The mode cannot be read from the database, so "none" is expected unless the per-customer
    policy is there: then authenticated may SELECT (and nothing else) on the tables that carry
    it. Anything else counts: RLS off, any other permissive policy, any privilege of anon or
    PUBLIC, EXECUTE on an adapter function for a browser role.
    """
    found: dict[str, Any] = {"seed": False, "per_customer": False, "foreign": []}
    statuses = [(n, s) for n, s in report.tables.items() if s.exists and s.adapter is not False]
    if report.receipts_table is not None:
        statuses.append((RECEIPTS_TABLE, report.receipts_table))
    objects: dict[str, list[str]] = {}
    for name, status in statuses:
        problems = _table_problems(name, status, schema, found)
        if problems:
            objects[name] = problems
    for function, callers in (report.function_grants or {}).items():
        can = sorted((r for r, allowed in (callers or {}).items() if allowed), key=_role_order)
        if can:
            objects.setdefault(function, []).append(f"{', '.join(can)} may execute {function}")
    fix: Literal["upgrade", "per-customer", "schema"] = (
        "upgrade" if found["seed"] else "per-customer" if found["per_customer"] else "schema"
    )
    return Exposure(objects, fix, found["foreign"])


# --- the facts the rules look at -----------------------------------------------------------


is_local = is_loopback  # True for the local stack's URL (wiring imports it by this name)


def run_sql_advice(file: str, local: bool) -> str:
    """How to run a generated SQL file where the database is."""
    if local:
        return f'run `psql "$DATABASE_URL" -f {file}` (`local up` prints DATABASE_URL)'
    return f"execute {file} in the Supabase SQL editor"


@dataclass(frozen=True)
class Facts:
    """One schema report and the key, with what the rules derive from them."""

    key: KeyInfo
    url: str
    schema: str
    report: SchemaReport
    prefixes: tuple[str, ...]  # the stores' prefixes when they were named, else ()
    local: bool
    denied: bool  # the key's role may not even read the schema report
    missing_tables: list[str]
    missing_functions: list[str]
    not_upgraded: list[str]
    no_access: list[str]
    old_functions: list[str]
    exposure: Exposure
    vector_tables: tuple[str, ...] = ()  # the vector stores' tables, when they were checked
    missing_vector_tables: list[str] = field(default_factory=list)
    missing_vector_functions: list[str] = field(default_factory=list)

    @classmethod
    def gather(
        cls, key: KeyInfo, settings: SupabaseSettings, report: SchemaReport,
        prefixes: Sequence[str] = (),
        *, denied: bool = False, vector_tables: Sequence[str] = (),
    ) -> Facts:
        """Derive the lists the rules test from one report (`vector_tables`: the vector
        stores' tables in it, checked for existence apart from the document tables)."""
        vectors = set(vector_tables)
        tables = {n: s for n, s in report.tables.items() if n not in vectors}
        missing_vector_functions = (
            report.absent_functions(VECTOR_FUNCTION_NAMES) if vector_tables else []
        )
        old = list(report.legacy_functions)
        if report.from_report_function and report.function_grants is None and tables:
            old.append(REPORT_FUNCTION)  # it predates the privilege report: the functions are old
        return cls(
            key=key,
            url=settings.url,
            schema=settings.db_schema,
            report=report,
            prefixes=tuple(prefixes),
            local=is_loopback(settings.url),
            denied=denied,
            missing_tables=[n for n, s in tables.items() if not s.exists],
            missing_functions=[n for n, ok in report.functions.items() if not ok],
            not_upgraded=[n for n, s in tables.items() if s.exists and s.adapter is False],
            no_access=[n for n, s in tables.items() if s.exists and s.access is False],
            old_functions=old,
            exposure=exposure(report, settings.db_schema),
            vector_tables=tuple(vector_tables),
            missing_vector_tables=[
                n for n in vector_tables if not report.tables.get(n, TableStatus(False)).exists
            ],
            missing_vector_functions=missing_vector_functions,
        )

    def vectors_sql(self) -> str:
        """How to create the vector stores' tables and functions."""
        listed = ", ".join([*self.missing_vector_tables, *self.missing_vector_functions])
        schema = f" --schema {self.schema}" if self.schema != "public" else ""
        return (
            f"create the vector stores' tables ({listed}): run `parlant-supabase-sync sql"
            f"{schema} --vectors DIMS > vectors.sql` with DIMS your embedder's dimensions "
            "(sql/ has vectors_1536.sql and vectors_3072.sql ready) and "
            f"{run_sql_advice('vectors.sql', self.local)}"
        )

    def sql(self, extra: str = "", *, upgrade: bool = False, functions: bool = False) -> str:
        """`run `<errors.sql_command + extra>` and <how to run the file where the database is>`."""
        prefixes = () if functions else self.prefixes
        command = sql_command(prefixes, schema=self.schema, upgrade=upgrade)
        head, _, file = command.rpartition(" > ")
        if functions:
            extra, file = " --functions-only", "functions.sql"
        return f"run `{head}{extra} > {file}` and {run_sql_advice(file, self.local)}"


# --- the rules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One readiness rule: when it `applies`, its `advice` is a note or the next step."""

    name: str
    severity: Literal["error", "note"]
    applies: Callable[[Facts], bool]
    advice: Callable[[Facts], str]


def _exposed_advice(f: Facts) -> str:
    problems = [p for lines in f.exposure.objects.values() for p in lines]
    problems.sort(key=lambda p: not p.startswith("row-level security"))  # RLS off reaches every row
    more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
    shown = "; ".join(problems[:3]) + more
    fix = f.exposure.fix
    command = f.sql(" --anon-policy per-customer" if fix == "per-customer" else "",
                    upgrade=fix == "upgrade")  # fmt: skip
    effect = {
        "upgrade": "it drops the older adapter's allow-all policies, enables RLS and revokes the rest",
        "per-customer": "it enables RLS and revokes everything but the per-customer read",
        "schema": "it enables RLS and revokes what anon and authenticated hold",
    }[fix]
    text = (
        f"anon/authenticated can reach {', '.join(f.exposure.objects)} ({shown}). "
        f"{_sentence(command)} ({effect})"
    )
    if f.exposure.foreign_policies:
        text += "; the other policies are not the adapter's: drop them with " + " ".join(
            f.exposure.foreign_policies
        )
    return text


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


RULES: tuple[Rule, ...] = (
    # notes: every one that applies is reported
    Rule("unknown-key-format", "note", lambda f: f.key.kind == "unknown",
         lambda f: "the key has an unknown format (neither sb_secret_/sb_publishable_ nor a JWT)"),
    Rule("legacy-jwt-key", "note", lambda f: f.key.kind == "legacy_jwt",
         lambda f: "legacy JWT key: Supabase deprecates these; prefer a secret key (sb_secret_…)"),
    Rule("expired-key", "note", lambda f: f.key.kind == "legacy_jwt" and f.key.expired(),
         lambda f: "the key's exp claim is in the past: it will be rejected"),
    Rule("key-of-another-project", "note",
         lambda f: bool(f.key.kind == "legacy_jwt" and f.key.ref and ".supabase.co" in f.url
                        and f"//{f.key.ref}." not in f.url),
         lambda f: f"the key was issued for project {f.key.ref!r}, not the project in SUPABASE_URL"),
    Rule("report-denied", "note", lambda f: f.denied,
         lambda f: f"the {f.key.role or 'unknown'} role may not read the schema report"),
    Rule("report-function-missing", "note",
         lambda f: not f.report.from_report_function and bool(f.report.tables),
         lambda f: "the report function is missing, so adapter/RLS state could not be read"),
    Rule("collation", "note",
         lambda f: bool(f.report.collation)
         and (f.report.collation or "").lower().replace("-", "") not in CODE_POINT_COLLATIONS,
         lambda f: f"the database collation is {f.report.collation!r}, not C.UTF-8 as on hosted "
         "Supabase: strings inside documents (not the id/creation_utc/… columns) compare and sort "
         "by it, so ranges and sorts on them can differ from Parlant's code-point order"),
    # errors: the first one that applies is the next step
    Rule("browser-role-key", "error", lambda f: f.key.role in ("anon", "authenticated"),
         lambda f: f"the key runs as {f.key.role!r}, which the generated SQL grants nothing to: "
         "set SUPABASE_KEY to the secret key (sb_secret_…) or the legacy service_role key"),
    Rule("no-tables", "error",
         lambda f: bool(f.missing_tables)
         and len(f.missing_tables) == len(f.report.tables) - len(f.vector_tables),
         lambda f: f"create the tables: {f.sql()}"),
    Rule("made-by-older-sql", "error",
         lambda f: bool(f.not_upgraded) or bool(
             f.missing_functions and not f.missing_tables and not f.report.from_report_function
         ),
         lambda f: "upgrade the tables made by the older adapter's SQL: "
         f"{f.sql(upgrade=True)}"),
    Rule("functions-of-an-earlier-release", "error", lambda f: bool(f.old_functions),
         lambda f: f"the database has SQL functions of an earlier release "
         f"({', '.join(f.old_functions)}): {f.sql(upgrade=True)} "
         "(it replaces them and locks the tables down)"),
    Rule("missing-tables", "error", lambda f: bool(f.missing_tables),
         lambda f: f"create the missing tables ({', '.join(f.missing_tables)}): "
         f"{f.sql()} (it only creates what does not exist)"),
    Rule("exposed", "error", lambda f: bool(f.exposure.objects), _exposed_advice),
    Rule("no-table-privileges", "error", lambda f: bool(f.no_access),
         lambda f: f"the key's role may not use {', '.join(f.no_access)} (no table privileges; "
         "new Supabase projects no longer grant them by default): "
         f"{f.sql(upgrade=True)} (it adds the grants)"),
    Rule("missing-functions", "error", lambda f: bool(f.missing_functions),
         lambda f: f"create the SQL functions: {f.sql(functions=True)}"),
    Rule("missing-vector-tables", "error",
         lambda f: bool(f.missing_vector_tables or f.missing_vector_functions),
         lambda f: f.vectors_sql()),
    Rule("not-a-server-key", "error", lambda f: f.key.role != "service_role",
         lambda f: f"the key's role is {f.key.role or 'unknown'}; use the secret key (sb_secret_…) "
         "or the legacy service_role key so the adapter can reach the tables"),
)
READY = "nothing to do: the database is ready"


def evaluate(facts: Facts, rules: Sequence[Rule] = RULES) -> tuple[list[str], Rule | None]:
    """The notes of every applicable "note" rule, and the first applicable "error" rule."""
    notes = [r.advice(facts) for r in rules if r.severity == "note" and r.applies(facts)]
    return notes, next((r for r in rules if r.severity == "error" and r.applies(facts)), None)


# --- the report ----------------------------------------------------------------------------


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
    #: With the vector stores checked: their tables and functions that do not exist.
    missing_vector_tables: list[str] = field(default_factory=list)
    missing_vector_functions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (never contains the key)."""
        data = asdict(self)
        data["tables"] = {name: asdict(status) for name, status in self.tables.items()}
        return data

    def rows(self) -> list[dict[str, Any]]:
        """One row per table and function, for the human-readable table."""
        rows = [_row("key", self.key_kind, "", f"role {self.key_role or 'unknown'}")]
        for name, status in self.tables.items():
            row = _row("table", name, "yes" if status.exists else "MISSING", self._detail(name))
            if status.exists:
                row.update(adapter=_yes_no(status.adapter), rls=_yes_no(status.rls))
            rows.append(row)
        for name, present in self.functions.items():
            rows.append(_row("function", name, "yes" if present else "MISSING", self._detail(name)))
        for name in self.exposed:
            if name not in self.tables and name not in self.functions:
                rows.append(_row("table", name, "yes", self._detail(name)))
        for name in self.legacy_functions:
            rows.append(
                _row("function", name, "OLD", "from an earlier release; `sql --upgrade` drops it")
            )
        return rows

    def _detail(self, name: str) -> str:
        return "; ".join(self.exposed.get(name, []))


def _row(kind: str, name: str, present: str, detail: str) -> dict[str, Any]:
    return {"object": kind, "name": name, "present": present, "adapter": "", "rls": "",
            "detail": detail}  # fmt: skip


def _yes_no(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


def check(
    settings: SupabaseSettings,
    transport: Transport,
    stores: Sequence[StoreLayout],
    *,
    named: bool,
    vectors: bool = False,
) -> CheckReport:
    """Tables, functions and the key's role of `stores`, with the one next step.

    `named`: the stores were chosen by the caller, so the advised commands carry `--prefix`.
    `vectors`: Parlant's vector stores' tables and functions are checked too (same request).
    """
    key = decode_key_role(settings.key.get_secret_value())
    denied = False
    vector_tables = parlant_vector_tables() if vectors else []
    try:
        report = fetch_report(transport, [*tables_of(stores), *vector_tables])
    except PermissionDenied:
        if key.role == "service_role":
            raise
        # A browser-role key may not even call the report function; the key is the problem.
        denied, report = True, SchemaReport({}, {}, from_report_function=False)
    if vector_tables:
        # Not document tables: "adapter" (the document signature) does not apply to them, but
        # their RLS, policies and grants count for the exposure rule like any adapter table's.
        report = replace(report, tables={
            n: replace(s, adapter=None) if n in vector_tables else s
            for n, s in report.tables.items()
        })  # fmt: skip
    prefixes = [s.prefix for s in stores] if named else []
    facts = Facts.gather(key, settings, report, prefixes, denied=denied,
                         vector_tables=vector_tables)  # fmt: skip
    notes, error = evaluate(facts)
    functions = dict(report.functions)
    if vector_tables and report.function_grants is not None:
        functions.update(
            {f: f not in facts.missing_vector_functions for f in VECTOR_FUNCTION_NAMES}
        )
    return CheckReport(
        url=settings.url,
        schema=settings.db_schema,
        key_kind=key.kind,
        key_role=key.role,
        tables=report.tables,
        functions=functions,
        missing_tables=facts.missing_tables,
        missing_functions=facts.missing_functions,
        not_upgraded=facts.not_upgraded,
        no_access=facts.no_access,
        notes=notes,
        next_step=READY if error is None else error.advice(facts),
        ok=error is None,
        prefixes=[s.prefix for s in stores],
        exposed=facts.exposure.objects,
        legacy_functions=facts.old_functions,
        missing_vector_tables=facts.missing_vector_tables,
        missing_vector_functions=facts.missing_vector_functions,
    )
