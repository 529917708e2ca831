"""Parlant workload: Parlant's real SessionDocumentStore over SupabaseDocumentDatabase.

Starts the local stand-in in a child process (so this process's CPU is the client's alone) and
runs one round per database, rounds interleaved, each on an empty store: a session, 1,000
create_event calls (customer message, status, tool call, agent message, status, repeated),
listings (list_events plain, with min_offset, with kinds, with both), then 50 updates
(update_session and update_event, alternating). The same workload runs on Parlant's
TransientDocumentDatabase (in memory) as the reference.

How to read it: per Parlant call, `requests` is the HTTP requests the adapter sent (from its
RequestStats), `ms` the median over rounds of the mean wall time per call, `CPU µs` the client
process CPU per call (event loop and worker threads included), and `÷` Supabase over Transient.
The create_event row's CPU is the client CPU per event.

    python benchmarks/parlant_workload.py                      # 3 rounds (about two minutes)
    python benchmarks/parlant_workload.py --rounds 5 --events 1000 --listings 20
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import (
    Portal,
    Sample,
    StandIn,
    interleave,
    machine_line,
    measure_async,
    print_table,
    quiet_logging,
    ratio,
)

PREFIX = "pss_workload_sessions_"
COLLECTIONS = ("sessions", "events", "metadata")
VARIANTS = ("Supabase", "Transient")

Batch = Callable[[], Awaitable[int]]


def _event_cycle() -> list[tuple[Any, Any, Any]]:
    """(source, kind, data) of one exchange, in the shapes Parlant's engine writes."""
    from parlant.core.sessions import EventKind, EventSource

    message = {
        "participant": {"id": "cust1", "display_name": "Customer"},
        "message": "Hello there, " * 8,
        "flagged": False,
        "tags": [],
    }
    status = {"status": "ready", "data": {}}
    tool = {
        "tool_calls": [
            {
                "tool_id": "svc:lookup",
                "arguments": {"q": "order"},
                "result": {"data": "shipped", "metadata": {}, "control": {}},
            }
        ]
    }
    return [
        (EventSource.CUSTOMER, EventKind.MESSAGE, message),
        (EventSource.AI_AGENT, EventKind.STATUS, status),
        (EventSource.AI_AGENT, EventKind.TOOL, tool),
        (EventSource.AI_AGENT, EventKind.MESSAGE, message),
        (EventSource.AI_AGENT, EventKind.STATUS, status),
    ]


class Workload:
    """One round's phases on one database; `phases` maps a row name to its batch."""

    def __init__(self, store: Any, events: int, listings: int, updates: int) -> None:
        self.store = store
        self.events = events
        self.listings = listings
        self.updates = updates
        self.session: Any = None
        self.event_ids: list[Any] = []

    def phases(self) -> dict[str, tuple[Batch, int]]:
        """Row name → (the batch, the Parlant calls it makes), in running order."""
        from parlant.core.sessions import EventKind

        middle = self.events // 2
        listings = {
            "list_events": {},
            f"list_events(min_offset={middle})": {"min_offset": middle},
            "list_events(kinds=[message])": {"kinds": [EventKind.MESSAGE]},
            "list_events(kinds, min_offset)": {
                "kinds": [EventKind.MESSAGE, EventKind.TOOL],
                "min_offset": middle,
            },
        }
        return {
            "create_event": (self.create_events, self.events),
            **{name: (self.lister(o), self.listings) for name, o in listings.items()},
            "update_session / update_event": (self.update, self.updates),
        }

    async def start(self) -> None:
        from parlant.core.agents import AgentId
        from parlant.core.customers import CustomerId

        self.session = await self.store.create_session(
            customer_id=CustomerId("cust1"), agent_id=AgentId("agent1")
        )

    async def create_events(self) -> int:
        cycle = _event_cycle()
        for number in range(self.events):
            source, kind, data = cycle[number % len(cycle)]
            event = await self.store.create_event(
                self.session.id, source, kind, trace_id=f"trace{number // 5}", data=data
            )
            self.event_ids.append(event.id)
        return self.events

    def lister(self, options: dict[str, Any]) -> Batch:
        async def batch() -> int:
            for _ in range(self.listings):
                await self.store.list_events(self.session.id, **options)
            return self.listings

        return batch

    async def update(self) -> int:
        for number in range(self.updates):
            if number % 2:
                await self.store.update_event(
                    self.session.id,
                    self.event_ids[number],
                    {"metadata": {"seen": number}},
                )
            else:
                await self.store.update_session(
                    self.session.id, {"consumption_offsets": {"client": number}}
                )
        return self.updates


class Variant:
    """A database to run rounds on: Supabase (on the stand-in) or Transient (in memory)."""

    def __init__(self, name: str, stand_in: StandIn) -> None:
        self.name = name
        self.stand_in = stand_in
        self.database: Any = None

    def requests(self) -> int:
        return self.database.core.stats.total_requests if self.name == "Supabase" else 0

    async def open(self) -> Any:
        """A fresh, empty database of this kind for one round."""
        if self.name == "Transient":
            from parlant.adapters.db.transient import TransientDocumentDatabase

            self.database = TransientDocumentDatabase()
            return self.database
        # Sessions and events start empty; metadata keeps the store's version (as in use).
        self.stand_in.execute_sql(f'TRUNCATE "{PREFIX}", "{PREFIX}events";')
        if self.database is None:
            from parlant_supabase_sync.facade import SupabaseDocumentDatabase

            self.database = SupabaseDocumentDatabase(
                logging.getLogger("bench"), PREFIX, self.stand_in.settings()
            )
        return self.database


async def run_round(
    variant: Variant, events: int, listings: int, updates: int
) -> dict[str, tuple[Sample, float]]:
    """One workload on an empty store: per phase, the per-call sample and requests per call."""
    from parlant.core.sessions import SessionDocumentStore

    database = await variant.open()
    results: dict[str, tuple[Sample, float]] = {}
    async with SessionDocumentStore(database, allow_migration=True) as store:
        workload = Workload(store, events, listings, updates)
        await workload.start()
        for name, (batch, calls) in workload.phases().items():
            before = variant.requests()
            sample = await measure_async(batch)
            results[name] = (sample, (variant.requests() - before) / calls)
    return results


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per database (default 3)")
    parser.add_argument("--events", type=int, default=1000, help="create_event calls per round")
    parser.add_argument("--listings", type=int, default=10, help="calls of each listing per round")
    parser.add_argument("--updates", type=int, default=50, help="update calls per round (default 50)")
    args = parser.parse_args(argv)
    if min(args.rounds, args.listings) < 1 or args.events < 10 or not 2 <= args.updates <= args.events:
        parser.error("--rounds and --listings must be >= 1, --events >= 10, 2 <= --updates <= --events")
    return args


def _table(samples: dict[tuple[str, str], list[tuple[Sample, float]]], rounds: int) -> None:
    names = list(dict.fromkeys(name for name, _ in samples))

    def median(name: str, variant: str, what: str) -> float:
        return statistics.median(getattr(s, what) for s, _ in samples[(name, variant)])

    rows = []
    for name in names:
        requests = statistics.median(r for _, r in samples[(name, "Supabase")])
        wall = {v: median(name, v, "wall") for v in VARIANTS}
        cpu = {v: median(name, v, "cpu") for v in VARIANTS}
        rows.append(
            [
                name,
                f"{requests:.2f}",
                f"{wall['Supabase'] * 1000:.2f}",
                f"{wall['Transient'] * 1000:.3f}",
                ratio(wall["Supabase"], wall["Transient"]),
                f"{cpu['Supabase'] * 1e6:,.0f}",
                f"{cpu['Transient'] * 1e6:,.0f}",
                ratio(cpu["Supabase"], cpu["Transient"]),
            ]
        )
    print_table(
        f"Per Parlant call (median of {rounds} interleaved rounds)",
        ["Parlant call", "requests", "Supabase ms", "Transient ms", "÷", "Supabase CPU µs",
         "Transient CPU µs", "÷"],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    from parlant_supabase_sync.ddl import generate_schema

    print(__doc__.split("\n\n")[2])
    print(machine_line())
    samples: dict[tuple[str, str], list[tuple[Sample, float]]] = {}
    with quiet_logging(), StandIn() as stand_in:
        stand_in.execute_sql(
            generate_schema({PREFIX: COLLECTIONS}, include_functions=True),
            visible=[PREFIX, PREFIX + "events", PREFIX + "metadata"],
        )
        portal = Portal("asyncio")  # Parlant's stores take aiorwlock locks: asyncio only
        variants = {name: Variant(name, stand_in) for name in VARIANTS}
        try:
            for variant in variants.values():  # warm-up: connections, threads, the loader pass
                portal.call(run_round, variant, 10, 1, 2)

            def one_round(name: str, _: int) -> None:
                results = portal.call(run_round, variants[name], args.events, args.listings, args.updates)
                for phase, result in results.items():
                    samples.setdefault((phase, name), []).append(result)

            interleave(list(VARIANTS), args.rounds, one_round)
        finally:
            portal.close()
            database = variants["Supabase"].database
            if database is not None:
                database.core.close()
    _table(samples, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
