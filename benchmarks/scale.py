"""Scale: what Parlant's access patterns cost at 1,000 and at 200,000 documents per table.

Starts the local stand-in in a child process, creates one set of tables per size (a sessions
store's `sessions` and `events`, the customer and the context-variable tag associations) from
the generated SQL, fills them with documents shaped like the ones Parlant's stores write
(inserted with SQL straight into PostgreSQL, then ANALYZE), and times the calls Parlant makes
through the sync core, rounds interleaved between the sizes. The entities the calls touch are
the same size at every table size (a session of 50 events, a customer with 5 sessions and 2
tags, tags with 10 owners), so only the table grows.

How to read it: one row per access pattern; `ms` is the median over rounds of the mean wall time
per call at each size, `large÷small` their ratio (the goal is ≤ 1.2: index-backed plans keep a
call's cost flat as the table grows; tests/core/test_plans.py checks the plans with EXPLAIN).
`requests` is HTTP requests per call (create_event is Parlant's three: find the session, find
the latest event, insert). `--gin` adds events written into two equal events tables, one with the
GIN index on `data` that the older adapter's SQL created: the SQL load (in 10 chunks, interleaved)
and insert_one through the core, time and WAL bytes per document, and the index's size.

    python benchmarks/scale.py                       # 1,000 and 200,000 (about two minutes)
    python benchmarks/scale.py --sizes 1000,20000,200000 --rounds 21 --gin   # about four
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import (
    Sample,
    StandIn,
    interleave,
    machine_line,
    measure,
    print_table,
    quiet_logging,
    ratio,
)

from parlant_supabase_sync._types import SortDirection

__all__ = [
    "EVENTS_PER_SESSION",
    "OWNERS_PER_TAG",
    "SESSIONS_PER_CUSTOMER",
    "TAGS_PER_OWNER",
    "Layout",
    "load_sql",
    "probe_id",
]

# --- Parlant-shaped documents, written with SQL (also used by tests/core/test_plans.py) -------

SESSIONS_PER_CUSTOMER = 5
EVENTS_PER_SESSION = 50
TAGS_PER_OWNER = 2
OWNERS_PER_TAG = 10
AGENTS = 10
# Parlant 3.3's store versions (SessionDocumentStore, CustomerDocumentStore,
# ContextVariableDocumentStore); documents of another version would be migrated by the loader.
SESSIONS_VERSION = "0.9.0"
CUSTOMERS_VERSION = "0.1.0"
VARIABLES_VERSION = "0.3.0"

# Python's datetime.isoformat() spelling, one second apart per row.
_UTC = (
    "to_char(timestamp '2025-01-01' + {i} * interval '1 second', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
)


def probe_id(seed: str, number: int) -> str:
    """The id `load_sql` gives row `number` of a table loaded with `seed` (10 characters)."""
    return hashlib.md5(f"{seed}{number}".encode()).hexdigest()[:10]


def _id(seed: str, number: str) -> str:
    return f"substr(md5('{seed}' || ({number})::text), 1, 10)"


@dataclass(frozen=True)
class Layout:
    """The tables of one size (`size` documents in each), named after it."""

    size: int
    variant: str = ""

    @property
    def stores(self) -> dict[str, tuple[str, ...]]:
        """`{prefix: collections}` for `ddl.generate_schema`."""
        return {
            self.sessions_prefix: ("sessions", "events"),
            self.customers_prefix: ("customer_tag_associations",),
            self.variables_prefix: ("variable_tag_associations",),
        }

    @property
    def sessions_prefix(self) -> str:
        return f"pss{self.size}{self.variant}_sessions_"

    @property
    def customers_prefix(self) -> str:
        return f"pss{self.size}{self.variant}_customers_"

    @property
    def variables_prefix(self) -> str:
        return f"pss{self.size}{self.variant}_context_variables_"

    @property
    def tables(self) -> dict[str, str]:
        """Collection name → table name."""
        return {
            "sessions": self.sessions_prefix,
            "events": self.sessions_prefix + "events",
            "customer_tag_associations": self.customers_prefix + "customer_tag_associations",
            "variable_tag_associations": self.variables_prefix + "variable_tag_associations",
        }

    @property
    def sessions(self) -> int:
        return max(self.size // EVENTS_PER_SESSION, 2)

    def session_id(self, number: int) -> str:
        """The session whose events are rows number, number + sessions, … of the events table."""
        return probe_id("s", number)


# Each table's mirrored columns (besides id, version, creation_utc) and document expression.
_Rows = tuple[tuple[str, ...], str]


def _insert(table: str, shape: _Rows, rows: range) -> str:
    # The mirrored columns hold the document's values, as parlant_write sets them.
    names = ["id", "version", "creation_utc", *shape[0]]
    values = ", ".join(f"d ->> '{name}'" for name in names)
    return (
        f'INSERT INTO "{table}" ({", ".join(names)}, data) SELECT {values}, d FROM '
        f"(SELECT {shape[1]} AS d FROM generate_series({rows.start}, {rows.stop - 1}) AS i) "
        "AS rows;"
    )


def _sessions(size: int) -> _Rows:
    customers = max(size // SESSIONS_PER_CUSTOMER, 1)
    document = (
        f"jsonb_build_object('id', {_id('s', 'i')}, 'version', '{SESSIONS_VERSION}', "
        f"'creation_utc', {_UTC.format(i='i')}, 'customer_id', 'cust' || (i % {customers}), "
        f"'agent_id', 'agent' || (i % {AGENTS}), 'mode', 'auto', 'title', NULL, "
        "'consumption_offsets', jsonb_build_object('client', 0), 'agent_states', '[]'::jsonb, "
        "'metadata', '{}'::jsonb, 'labels', '[]'::jsonb)"
    )
    return ("customer_id", "agent_id"), document


def _events(sessions: int) -> _Rows:
    # Events of one session are spread over the table (sessions interleave in time); within
    # a session offsets follow creation order: customer message, status, tool, agent message,
    # status; one in 25 is deleted.
    offset = f"(i / {sessions})"
    kind = (
        f"(ARRAY['message', 'status', 'tool', 'message', 'status'])[{offset} % 5 + 1]"
    )
    message = (
        "jsonb_build_object('participant', jsonb_build_object('id', 'cust1', "
        "'display_name', 'Customer'), 'message', repeat('Hello there, ', 8), "
        "'flagged', false, 'tags', '[]'::jsonb)"
    )
    status = "jsonb_build_object('status', 'ready', 'data', '{}'::jsonb)"
    tool = (
        "jsonb_build_object('tool_calls', jsonb_build_array(jsonb_build_object("
        "'tool_id', 'svc:lookup', 'arguments', jsonb_build_object('q', 'order'), "
        "'result', jsonb_build_object('data', 'shipped', 'metadata', '{}'::jsonb, "
        "'control', '{}'::jsonb))))"
    )
    document = (
        f"jsonb_build_object('id', {_id('e', 'i')}, 'version', '{SESSIONS_VERSION}', "
        f"'creation_utc', {_UTC.format(i='i')}, 'session_id', {_id('s', f'i % {sessions}')}, "
        f"'source', CASE {offset} % 5 WHEN 0 THEN 'customer' ELSE 'ai_agent' END, "
        f"'kind', {kind}, 'offset', {offset}, 'trace_id', 'trace' || (i / 5), "
        f"'data', CASE {offset} % 5 WHEN 1 THEN {status} WHEN 4 THEN {status} "
        f"WHEN 2 THEN {tool} ELSE {message} END, "
        f"'metadata', NULL, 'deleted', {offset} % 25 = 24)"
    )
    return ("session_id",), document


def _tags(size: int, owner: str, version: str, column: bool) -> _Rows:
    owners = max(size // TAGS_PER_OWNER, 1)
    tags = max(size // OWNERS_PER_TAG, 1)
    document = (
        f"jsonb_build_object('id', {_id('t' + owner, 'i')}, 'version', '{version}', "
        f"'creation_utc', {_UTC.format(i='i')}, '{owner}_id', '{owner}' || (i % {owners}), "
        f"'tag_id', 'tag' || (i % {tags}))"
    )
    return (f"{owner}_id",) if column else (), document


def load_sql(
    layout: Layout, tables: Sequence[str] | None = None, rows: range | None = None
) -> str:
    """SQL filling the layout's tables (all, or the named collections) with its documents (all,
    or the `rows` numbers of them); ANALYZE after a full load."""
    wanted = list(layout.tables) if tables is None else list(tables)
    size = layout.size
    shapes = {
        "sessions": _sessions(size),
        "events": _events(layout.sessions),
        "customer_tag_associations": _tags(size, "customer", CUSTOMERS_VERSION, True),
        "variable_tag_associations": _tags(size, "variable", VARIABLES_VERSION, False),
    }
    parts = [_insert(layout.tables[name], shapes[name], rows or range(size)) for name in wanted]
    if rows is None:
        parts += [f'ANALYZE "{layout.tables[name]}";' for name in wanted]
    return "\n".join(parts)


# --- the calls Parlant makes (sessions.py, customers.py, context_variables.py of Parlant 3.3) --

Collections = Mapping[str, Any]  # collection name → SyncDocumentCollection
Call = Callable[[Layout, Collections], None]


def _event(session_id: str, offset: int) -> dict[str, Any]:
    """A customer message as SessionDocumentStore._serialize_event writes it."""
    return {
        "id": uuid.uuid4().hex[:10],
        "version": SESSIONS_VERSION,
        "creation_utc": datetime.now(timezone.utc).isoformat(),
        "session_id": session_id,
        "source": "customer",
        "kind": "message",
        "offset": offset,
        "trace_id": uuid.uuid4().hex,
        "data": {
            "participant": {"id": "cust1", "display_name": "Customer"},
            "message": "Hello there, " * 8,
            "flagged": False,
            "tags": [],
        },
        "metadata": None,
        "deleted": False,
    }


def _session_exists(layout: Layout, c: Collections, number: int) -> str:
    session_id = layout.session_id(number)
    if c["sessions"].find_one({"id": {"$eq": session_id}}) is None:
        raise RuntimeError(f"session {session_id} is missing from {layout.tables['sessions']}")
    return session_id


def create_event(layout: Layout, c: Collections) -> None:
    # Session 1 receives the new events; session 0 (listed below) keeps its 50.
    session_id = _session_exists(layout, c, 1)
    latest = c["events"].find_one(
        {"session_id": {"$eq": session_id}}, sort=(("offset", SortDirection.DESC),)
    )
    offset = latest["offset"] + 1 if latest else 0
    c["events"].insert_one(_event(session_id, offset))


def _list_events(min_offset: int | None, kinds: Sequence[str]) -> Call:
    def call(layout: Layout, c: Collections) -> None:
        session_id = _session_exists(layout, c, 0)
        base: dict[str, Any] = {
            "session_id": {"$eq": session_id},
            **({"offset": {"$gte": min_offset}} if min_offset else {}),
            "deleted": {"$eq": False},
        }
        where = {"$or": [{**base, "kind": {"$eq": k}} for k in kinds]} if kinds else base
        c["events"].find(where)

    return call


def _find(collection: str, where: Mapping[str, Any]) -> Call:
    def call(layout: Layout, c: Collections) -> None:
        c[collection].find(where)

    return call


def _read_session(layout: Layout, c: Collections) -> None:
    _session_exists(layout, c, 3)


_TAGS = {"$or": [{"tag_id": {"$eq": "tag5"}}, {"tag_id": {"$eq": "tag6"}}]}
CALLS: dict[str, Call] = {
    "read_session (find_one by id)": _read_session,
    "list_sessions(customer_id)": _find("sessions", {"customer_id": {"$eq": "cust7"}}),
    "create_event": create_event,
    "list_events": _list_events(None, ()),
    "list_events(min_offset=25)": _list_events(25, ()),
    "list_events(kinds=[message, tool])": _list_events(None, ("message", "tool")),
    "list_events(min_offset, kinds)": _list_events(25, ("message", "status")),
    "a customer's tags": _find("customer_tag_associations", {"customer_id": {"$eq": "cust11"}}),
    "customers of 2 tags": _find("customer_tag_associations", _TAGS),
    "a variable's tags": _find("variable_tag_associations", {"variable_id": {"$eq": "var11"}}),
    "variables of 2 tags": _find("variable_tag_associations", _TAGS),
}


# --- running -----------------------------------------------------------------------------------


@dataclass
class Opened:
    """One layout's databases (one per store prefix) and collections."""

    layout: Layout
    databases: list[Any]
    collections: dict[str, Any]

    def requests(self) -> int:
        return sum(database.stats.total_requests for database in self.databases)

    def close(self) -> None:
        for database in self.databases:
            database.close()


def _identity(document: Any) -> Any:
    return document


def parlant_schemas() -> dict[str, type[Any]]:
    """The document TypedDicts of Parlant's stores (insert_one checks their keys)."""
    from parlant.core.context_variables import ContextVariableTagAssociationDocument
    from parlant.core.customers import _CustomerTagAssociationDocument
    from parlant.core.sessions import _EventDocument, _SessionDocument

    return {
        "sessions": _SessionDocument,
        "events": _EventDocument,
        "customer_tag_associations": _CustomerTagAssociationDocument,
        "variable_tag_associations": ContextVariableTagAssociationDocument,
    }


def open_layout(stand_in: StandIn, layout: Layout) -> Opened:
    """Tables from the generated SQL and the core's collections on them (still empty, so the
    loader's one pass over each table costs nothing)."""
    from parlant_supabase_sync.core import SyncDocumentDatabase
    from parlant_supabase_sync.ddl import generate_schema

    stand_in.execute_sql(generate_schema(layout.stores), visible=list(layout.tables.values()))
    settings = stand_in.settings()
    databases, collections = [], {}
    schemas = parlant_schemas()
    for prefix, names in layout.stores.items():
        database = SyncDocumentDatabase(settings, table_prefix=prefix)
        databases.append(database)
        for name in names:
            collections[name] = database.get_or_create_collection(name, schemas[name], _identity)
    return Opened(layout, databases, collections)


def _load(stand_in: StandIn, layout: Layout, tables: Sequence[str] | None = None) -> float:
    start = time.perf_counter()
    stand_in.execute_sql(load_sql(layout, tables))
    return time.perf_counter() - start


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}"


def run_calls(opened: Sequence[Opened], rounds: int, batch: int) -> None:
    samples: dict[tuple[str, int], list[Sample]] = {}
    requests: dict[tuple[str, int], int] = {}
    by_size = {o.layout.size: o for o in opened}

    def one_round(variant: str, _: int) -> None:
        target = by_size[int(variant)]
        for name, call in CALLS.items():
            before = target.requests()

            def run(call: Call = call) -> int:
                for _ in range(batch):
                    call(target.layout, target.collections)
                return batch

            samples.setdefault((name, target.layout.size), []).append(measure(run))
            requests[(name, target.layout.size)] = (target.requests() - before) // batch

    for o in opened:  # warm-up: connections, caches, the planner's first look
        one_round(str(o.layout.size), 0)
    samples.clear()
    interleave([str(size) for size in by_size], rounds, one_round)
    sizes = sorted(by_size)
    small, large = sizes[0], sizes[-1]
    header = ["Parlant call", "requests"]
    header += [f"{size:,} ms" for size in sizes] + [f"{large:,}÷{small:,}"]
    header += [f"CPU µs {small:,}", f"CPU µs {large:,}"]
    rows = []
    for name in CALLS:
        wall = {size: statistics.median(s.wall for s in samples[(name, size)]) for size in sizes}
        cpu = {size: statistics.median(s.cpu for s in samples[(name, size)]) for size in sizes}
        rows.append(
            [name, str(requests[(name, large)])]
            + [_ms(wall[size]) for size in sizes]
            + [ratio(wall[large], wall[small]), _us(cpu[small]), _us(cpu[large])]
        )
    print_table(
        f"Per Parlant call, wall ms (median of {rounds} interleaved rounds of {batch} calls)",
        header,
        rows,
    )


# --- the GIN index on data -----------------------------------------------------------------------


class _Server:
    """A superuser connection to the stand-in's PostgreSQL: timed statements and WAL bytes."""

    def __init__(self, stand_in: StandIn) -> None:
        import psycopg

        self.conn = psycopg.connect(stand_in.env["DATABASE_URL"], autocommit=True)

    def lsn(self) -> str:
        row = self.conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        return str(row[0])

    def wal_since(self, lsn: str) -> int:
        row = self.conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", (lsn,)
        ).fetchone()
        assert row is not None
        return int(row[0])

    def timed(self, statement: str) -> tuple[float, int]:
        """(seconds, WAL bytes) of one statement."""
        lsn = self.lsn()
        start = time.perf_counter()
        self.conn.execute(statement.encode())
        return time.perf_counter() - start, self.wal_since(lsn)


@dataclass
class _GinSamples:
    load: list[float]  # seconds per document, per chunk
    load_wal: list[float]  # WAL bytes per document, per chunk
    insert: list[Sample]  # insert_one through the core, per round
    insert_wal: list[float]  # WAL bytes per insert_one, per round


def _gin_tables(stand_in: StandIn, size: int) -> dict[str, Opened]:
    opened = {}
    for name, layout in {"with GIN": Layout(size, "gin"), "without": Layout(size, "nogin")}.items():
        opened[name] = open_layout(stand_in, layout)
        table = layout.tables["events"]
        stand_in.execute_sql(
            f'DROP INDEX IF EXISTS "idx_{table}_data_gin"; DROP INDEX IF EXISTS "{table}_gin";'
            + (f' CREATE INDEX "{table}_gin" ON "{table}" USING gin (data);' if name == "with GIN" else "")
        )
    return opened


def run_gin(stand_in: StandIn, size: int, rounds: int, batch: int) -> None:
    """Events into two equal tables, one with the older SQL's GIN index on data: the SQL load in
    10 chunks, then insert_one through the core; both interleaved."""
    opened = _gin_tables(stand_in, size)
    server = _Server(stand_in)
    found = {name: _GinSamples([], [], [], []) for name in opened}
    chunk = max(size // 10, 1)

    def load_round(name: str, number: int) -> None:
        rows = range(number * chunk, min(size, (number + 1) * chunk))
        seconds, wal = server.timed(load_sql(opened[name].layout, ["events"], rows))
        found[name].load.append(seconds / len(rows))
        found[name].load_wal.append(wal / len(rows))

    def insert_round(name: str, number: int) -> None:
        events = opened[name].collections["events"]
        session_id = opened[name].layout.session_id(1)
        first = EVENTS_PER_SESSION + (number + 1) * batch

        def run() -> int:
            for offset in range(first, first + batch):
                events.insert_one(_event(session_id, offset))
            return batch

        lsn = server.lsn()
        found[name].insert.append(measure(run))
        found[name].insert_wal.append(server.wal_since(lsn) / batch)

    interleave(list(opened), (size + chunk - 1) // chunk, load_round)
    for name, o in opened.items():  # statistics, then a warm-up batch
        server.conn.execute(f'ANALYZE "{o.layout.tables["events"]}"'.encode())
        insert_round(name, -1)
    for samples in found.values():
        samples.insert.clear()
        samples.insert_wal.clear()
    interleave(list(opened), rounds, insert_round)
    _gin_table(server, opened, found, size, rounds, batch)
    server.conn.close()
    for o in opened.values():
        o.close()


def _gin_table(
    server: _Server,
    opened: Mapping[str, Opened],
    found: Mapping[str, _GinSamples],
    size: int,
    rounds: int,
    batch: int,
) -> None:
    med = statistics.median
    base = found["without"]
    rows = []
    for name, o in opened.items():
        table = o.layout.tables["events"]
        row = server.conn.execute(
            f"SELECT pg_relation_size('\"{table}\"'), "
            f"COALESCE(pg_relation_size(to_regclass('\"{table}_gin\"')), 0)".encode()
        ).fetchone()
        assert row is not None
        mine = found[name]
        insert_wall = med(s.wall for s in mine.insert)
        rows.append(
            [
                name,
                _us(med(mine.load)),
                ratio(med(mine.load), med(base.load)),
                f"{med(mine.load_wal):,.0f}",
                _ms(insert_wall),
                ratio(insert_wall, med(s.wall for s in base.insert)),
                f"{med(mine.insert_wal):,.0f}",
                f"{row[1] / row[0]:.0%}",
            ]
        )
    print_table(
        f"Events into a {size:,}-event table: SQL load (10 interleaved chunks, per document) and "
        f"insert_one through the core (median of {rounds} interleaved rounds of {batch})",
        ["events table", "load µs", "÷", "load WAL B", "insert_one ms", "÷", "insert WAL B",
         "GIN ÷ table size"],
        rows,
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,200000", help="documents per table (default 1000,200000)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--batch", type=int, default=10, help="calls per round and size (default 10)")
    parser.add_argument("--gin", action="store_true", help="also insert_one with and without the GIN index")
    parser.add_argument("--gin-only", action="store_true", help="only the GIN comparison")
    parser.add_argument("--gin-size", type=int, default=20_000, help="events in the GIN tables (default 20000)")
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(size) for size in args.sizes.split(",") if size.strip()})
    except ValueError:
        parser.error("--sizes takes comma-separated whole numbers, e.g. 1000,200000")
    if len(args.sizes) < 2 or args.sizes[0] < 100 or args.rounds < 1 or args.batch < 1:
        parser.error("give at least two --sizes of 100 or more, and --rounds/--batch of 1 or more")
    return args


def _calls(stand_in: StandIn, sizes: Sequence[int], rounds: int, batch: int) -> None:
    opened = [open_layout(stand_in, Layout(size)) for size in sizes]
    for o in opened:
        seconds = _load(stand_in, o.layout)
        print(f"loaded {o.layout.size:,} documents into each of 4 tables in {seconds:.1f} s")
    print()
    run_calls(opened, rounds, batch)
    for o in opened:
        o.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    from parlant_supabase_sync.ddl import generate_functions

    print(__doc__.split("\n\n")[2])
    print(machine_line())
    with quiet_logging(), StandIn() as stand_in:
        stand_in.execute_sql(generate_functions())
        if not args.gin_only:
            _calls(stand_in, args.sizes, args.rounds, args.batch)
        if args.gin or args.gin_only:
            run_gin(stand_in, args.gin_size, args.rounds, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
