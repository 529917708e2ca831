"""The `parlant-supabase-sync` console script (click).

Every verb is a thin call into the library a script would use (`api`, `bulk`, `migrate_local`,
`demo`, `local.cli_up`); output formats, progress and the one-line errors live in `cli_output`.
Heavy modules are imported inside the commands, so `--help` is fast and works without extras.
Shell completion comes from click: `eval "$(_PARLANT_SUPABASE_SYNC_COMPLETE=bash_source
parlant-supabase-sync)"` (zsh_source, fish_source for the other shells).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import cli_output
from .cli_output import (
    PROG,
    STORES_HELP,
    CommandFailed,
    Output,
    output_options,
    parse_request_line,
    parse_schemas,
    parse_sort,
    parse_store_prefixes,
    where_option,
)
from .ddl import ANON_POLICIES
from .demo import command as demo_command
from .naming import ALL_STORES, PARLANT_STORES

if TYPE_CHECKING:
    from .api import Collection, Connection
    from .bulk import OnConflict

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _examples(*lines: str, note: str = "") -> str:
    """An epilog click prints as written (`\\b` stops rewrapping)."""
    title = "examples:" if len(lines) > 1 else "example:"
    text = "\b\n" + title + "\n" + "\n".join(f"  {PROG} {line}" for line in lines)
    return text + (f"\n\n{note}" if note else "")


def _complete_store(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return [name for name in [*PARLANT_STORES, ALL_STORES] if name.startswith(incomplete)]


def _store_argument(func: F) -> F:
    return click.argument("store", metavar="STORE", shell_complete=_complete_store)(func)


# --- connection options (before or after the verb) ----------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where to connect: each None falls back to the environment (SUPABASE_URL, …)."""

    url: str | None = None
    key: str | None = None
    schema: str | None = None

    def connect(self) -> Connection:
        from .api import connect

        return connect(url=self.url, key=self.key, schema=self.schema)


def _add_connection_options(func: F) -> F:
    options = [
        click.option("--url", metavar="URL",
                     help="project URL, e.g. https://<ref>.supabase.co (default: $SUPABASE_URL)"),
        click.option("--key", metavar="KEY",
                     help="API key (discouraged: visible in the process list; prefer "
                     "$SUPABASE_KEY)"),
        click.option("--schema", metavar="NAME",
                     help="database schema exposed by the API (default: $SUPABASE_SCHEMA or public)"),
        click.option("-v", "--verbose", is_flag=True,
                     help="log retries and other library messages on stderr"),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _verbose(ctx: click.Context, verbose: bool) -> None:
    verbose = verbose or bool(ctx.find_root().params.get("verbose"))
    cli_output.state(ctx).verbose = verbose
    cli_output.configure_logging(verbose)


def connection_options(func: F) -> F:
    """--url/--key/--schema/-v on a verb; the command receives `target: Target`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        root = ctx.find_root().params
        values = {name: kwargs.pop(name) for name in ("url", "key", "schema")}
        kwargs["target"] = Target(**{n: v if v is not None else root.get(n)
                                     for n, v in values.items()})  # fmt: skip
        _verbose(ctx, kwargs.pop("verbose"))
        return func(*args, **kwargs)

    return _add_connection_options(wrapper)  # type: ignore[return-value]


# --- the group ---------------------------------------------------------------------------------


def _version() -> str:
    from . import __version__

    return __version__


@click.group(
    PROG,
    cls=cli_output.Group,
    context_settings=CONTEXT,
    no_args_is_help=False,
    epilog=_examples(
        "sql > schema.sql",
        "check",
        'find sessions events --where \'{"session_id": {"$eq": "s1"}}\' --nl',
        note="Credentials come from SUPABASE_URL and SUPABASE_KEY; run "
        f"`{PROG} VERB --help` for each verb. Shell completion: "
        f'eval "$(_PARLANT_SUPABASE_SYNC_COMPLETE=bash_source {PROG})"',
    ),
)
@click.version_option(_version(), "--version", prog_name=PROG, message="%(prog)s %(version)s")
@_add_connection_options
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """Inspect and maintain Parlant data stored in Supabase."""
    _verbose(ctx, bool(options.get("verbose")))


cli.add_command(demo_command, "demo")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    code: int = cli.main(argv, PROG, standalone_mode=False)
    return code


# --- sql / check / ls ----------------------------------------------------------------------------


_prefix_option = click.option(
    "--prefix", "prefixes", multiple=True, metavar="PREFIX",
    help=f"store key or table prefix; repeatable; {ALL_STORES!r}: every Parlant store "
    f"(default: {STORES_HELP})",
)  # fmt: skip


@cli.command(
    "sql",
    epilog=_examples(
        "sql > schema.sql",
        "sql --prefix all > schema.sql",
        "sql --prefix agents --prefix guidelines > schema.sql",
        "sql --prefix acme_sessions_ --functions-only",
        "sql --upgrade > upgrade.sql",
        "sql --prefix all --vectors 1536 > schema.sql",
        note="Run the output once in the Supabase SQL editor (Dashboard → SQL Editor), or "
        'with psql "$DATABASE_URL" -f schema.sql.',
    ),
)
@_prefix_option
@click.option("--functions-only", is_flag=True, help="only the SQL functions")
@click.option("--upgrade", is_flag=True,
              help="the upgrade script for databases set up with the older adapter's SQL")
@click.option("--keep-seed-policies", is_flag=True,
              help="with --upgrade: keep the older adapter's allow-all policies (warns; anyone "
              "with the anon key keeps full access)")
@click.option("--anon-policy", type=click.Choice(ANON_POLICIES),
              default="none", show_default=True,
              help="row-level-security policy for the anon role")
@click.option("--schema", metavar="NAME",
              help="database schema for the objects (default: $SUPABASE_SCHEMA or public)")
@click.option("--vectors", "vector_dims", type=click.IntRange(1, 4000), metavar="DIMS",
              help="also the pgvector tables of Parlant's vector stores (glossary, canned "
              "responses, journeys, capabilities) for an embedder of DIMS dimensions")
@click.pass_context
def sql_command(ctx: click.Context, prefixes: tuple[str, ...], functions_only: bool,
                upgrade: bool, keep_seed_policies: bool, anon_policy: str,
                schema: str | None, vector_dims: int | None) -> None:  # fmt: skip
    """Print the SQL that creates the tables and functions."""
    from .api import schema_sql
    from .settings import read_environment

    if functions_only and upgrade:
        raise click.UsageError("--functions-only and --upgrade cannot be combined")
    schema = schema or ctx.find_root().params.get("schema")
    text, warnings = schema_sql(
        list(prefixes) or None,
        functions_only=functions_only,
        upgrade=upgrade,
        anon_policy=anon_policy,
        schema=schema or read_environment().get("SUPABASE_SCHEMA") or "public",
        keep_seed_policies=keep_seed_policies,
        vector_dims=vector_dims,
    )
    for warning in warnings:
        sys.stderr.write(f"{PROG}: warning: {' '.join(warning.split())}\n")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@cli.command(
    "check",
    epilog=_examples("check", "check --table", "check --prefix acme_sessions_",
                     "check --prefix all --vectors",
                     note="Exits with 1 when something is missing."),
)
@_prefix_option
@click.option("--vectors/--no-vectors", default=None,
              help="check the vector stores' tables too (default: when "
              "PARLANT_SUPABASE_VECTOR_STORE=supabase)")
@connection_options
@output_options(columns=False)
def check_command(
    prefixes: tuple[str, ...], vectors: bool | None, target: Target, output: Output
) -> None:
    """Check tables, functions and the key; say what to do next."""
    with target.connect() as conn:
        report = conn.check(list(prefixes) or None, vectors=vectors)
    if output.format == "table":
        cli_output.write_table(report.rows(), sys.stdout)
        sys.stdout.write("".join(f"note: {note}\n" for note in report.notes))
        sys.stdout.write(f"next step: {report.next_step}\n")
    elif output.format == "csv":
        output.rows(report.rows())
    else:
        output.object(report.as_dict())
    if not report.ok:
        raise CommandFailed(report.next_step)


@cli.command("ls", epilog=_examples("ls --table", "ls sessions"))
@click.argument("stores", nargs=-1, metavar="[STORE]...", shell_complete=_complete_store)
@click.option("--no-counts", is_flag=True, help="skip the document counts")
@connection_options
@output_options()
def ls_command(stores: tuple[str, ...], no_counts: bool, target: Target, output: Output) -> None:
    """List stores, collections, tables and document counts."""
    with target.connect() as conn:
        rows = conn.overview(list(stores) or None, counts=not no_counts)
        output.rows(row.as_dict() for row in rows)


# --- count / find / get --------------------------------------------------------------------------


def _collection(conn: Connection, store: str, collection: str) -> Collection:
    return conn.store(store).collection(collection)


@cli.command(
    "count",
    epilog=_examples("count sessions events",
                     'count sessions events --where \'{"deleted": {"$eq": false}}\''),
)
@_store_argument
@click.argument("collection")
@where_option
@connection_options
@output_options(csv=False, columns=False)
def count_command(store: str, collection: str, where: dict[str, Any] | None, target: Target,
                  output: Output) -> None:  # fmt: skip
    """Count documents, optionally matching a filter."""
    with target.connect() as conn:
        n = _collection(conn, store, collection).count(where)
    if output.format == "table":
        cli_output.write_table([{"store": store, "collection": collection, "count": n}],
                               sys.stdout)  # fmt: skip
    else:
        sys.stdout.write(f"{n}\n")


@cli.command(
    "find",
    epilog=_examples(
        'find sessions events --where \'{"session_id": {"$eq": "s1"}}\' --nl',
        "find sessions sessions --limit 10 --sort creation_utc:desc --table",
        "find sessions events --csv --columns id,creation_utc,kind",
        note="With --limit, the cursor of the next page is printed on stderr.",
    ),
)
@_store_argument
@click.argument("collection")
@where_option
@click.option("--limit", type=click.IntRange(min=0), metavar="N", help="at most N documents")
@click.option("--sort", multiple=True, callback=parse_sort, metavar="FIELD[:asc|desc]",
              help="sort key; repeatable (default: creation_utc, id ascending)")
@click.option("--cursor", metavar="CURSOR",
              help="continue after this cursor (from a previous --limit page)")
@connection_options
@output_options()
def find_command(store: str, collection: str, where: dict[str, Any] | None, limit: int | None,
                 sort: list[tuple[str, str]] | None, cursor: str | None, target: Target,
                 output: Output) -> None:  # fmt: skip
    """Print documents matching a filter."""
    from .api import encode_cursor

    with target.connect() as conn:
        coll = _collection(conn, store, collection)
        if limit is None and cursor is None:
            output.rows(coll.rows(where, sort=sort))
            return
        result = coll.find(where, limit=limit, cursor=cursor, sort=sort)
        output.rows(result.items)
    if result.has_more and result.next_cursor is not None:
        sys.stderr.write(f"more documents: --cursor {encode_cursor(result.next_cursor)}\n")
    elif result.has_more:
        sys.stderr.write(
            f"more documents: {len(result.items)} of {result.total_count} shown; raise --limit "
            "or drop it to list every match\n"
        )


@cli.command("get", epilog=_examples("get sessions sessions s-123"))
@_store_argument
@click.argument("collection")
@click.argument("id", metavar="ID")
@connection_options
@output_options()
def get_command(store: str, collection: str, id: str, target: Target, output: Output) -> None:
    """Print one document by id."""
    with target.connect() as conn:
        doc = _collection(conn, store, collection).get(id)
    if doc is None:
        raise CommandFailed(
            f"no document with id {id!r} in {store}/{collection}; "
            f"list ids with `{PROG} find {store} {collection} --table`"
        )
    output.object(doc)


# --- export / import / failed --------------------------------------------------------------------


@cli.command(
    "export",
    epilog=_examples(
        "export sessions events > events.jsonl",
        "export sessions events -o events.jsonl",
        "export sessions --output backup/",
        note="One collection goes to stdout, to FILE, or into an existing directory; several "
        "collections (or none named: all of the store's) need --output DIR (created if "
        "missing), one <store>.<collection>.jsonl each. Where the output goes is decided before "
        "the first request; a failed export leaves no file behind.",
    ),
)
@_store_argument
@click.argument("collections", nargs=-1, metavar="[COLLECTION]...")
@click.option("-o", "--output", "path", metavar="PATH",
              help="file (one collection) or directory (default: stdout)")
@click.option("--page-size", type=click.IntRange(min=1), metavar="N",
              help="documents per request")
@connection_options
def export_command(store: str, collections: tuple[str, ...], path: str | None,
                   page_size: int | None, target: Target) -> None:  # fmt: skip
    """Write collections as JSON lines (streamed page by page)."""
    from . import bulk

    with target.connect() as conn:
        handle = conn.store(store)
        chosen = [handle.collection(name) for name in collections or handle.collections]
        plan = bulk.plan_export(chosen, path)
        with cli_output.Progress() as progress:
            results = bulk.export(plan, stdout=sys.stdout, page_size=page_size,
                                  progress=progress, totals=sys.stderr.isatty())  # fmt: skip
    for result in results:
        if result.path is not None:
            sys.stderr.write(
                f"exported {result.documents} document(s) of {result.collection} to {result.path}\n"
            )


@cli.command(
    "import",
    epilog=_examples(
        "import sessions events events.jsonl",
        "import sessions events --dry-run < events.jsonl",
        note="Every line is checked before the first write: a bad line anywhere and nothing is "
        "written. Identical existing documents are skipped, so a re-run is idempotent; a "
        "document whose id exists with other content stops the import unless --replace or "
        "--ignore says what to do.",
    ),
)
@_store_argument
@click.argument("collection")
@click.argument("file", required=False, metavar="[FILE]",
                type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--dry-run", is_flag=True,
              help="validate and compare; report what would be written, write nothing")
@click.option("--replace", is_flag=True,
              help="overwrite documents whose id exists with other content")
@click.option("--ignore", is_flag=True,
              help="keep the stored documents whose id exists with other content")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True,
              metavar="N", help="documents per request")
@connection_options
@output_options(csv=False, columns=False)
def import_command(store: str, collection: str, file: str | None, dry_run: bool,
                   replace: bool, ignore: bool, batch_size: int, target: Target,
                   output: Output) -> None:  # fmt: skip
    """Load JSON lines into a collection (validated first, idempotent)."""
    if replace and ignore:
        raise click.UsageError("--replace and --ignore cannot be combined")
    conflict: OnConflict = "replace" if replace else "ignore" if ignore else "fail"
    source: Any = sys.stdin.buffer if file in (None, "-") else file
    with target.connect() as conn:
        coll = _collection(conn, store, collection)
        with cli_output.Progress() as progress:
            report = coll.import_jsonl(source, dry_run=dry_run, on_conflict=conflict,
                                       batch_size=batch_size, progress=progress)  # fmt: skip
    output.object(report.as_dict())
    if not report.ok:
        raise CommandFailed(
            f"{report.summary()}; the import would stop there: add --replace or --ignore"
        )
    sys.stderr.write(f"{report.summary()}\n")


@cli.command(
    "failed",
    epilog=_examples(
        "failed sessions",
        "failed sessions events --table",
        "failed sessions events --restore ev-1 ev-2",
        note="--restore inserts the (fixed) documents into the main table, then removes them "
        "from the failed-migrations table.",
    ),
)
@_store_argument
@click.argument("collection", required=False)
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--restore", is_flag=True, help="move the documents ID... back")
@connection_options
@output_options()
def failed_command(store: str, collection: str | None, ids: tuple[str, ...], restore: bool,
                   target: Target, output: Output) -> None:  # fmt: skip
    """List documents that failed migration, or restore them."""
    if restore and (collection is None or not ids):
        raise click.UsageError("--restore needs the COLLECTION and at least one ID")
    if ids and not restore:
        raise click.UsageError("IDs are only taken with --restore")
    with target.connect() as conn:
        handle = conn.store(store)
        if restore:
            assert collection is not None
            result = handle.collection(collection).restore_failed(ids)
            output.rows(item.as_dict() for item in result)
            problems = [item for item in result if not item.restored]
            for item in problems:
                sys.stderr.write(f"{PROG}: {item.id}: {item.message}\n")
            if problems:
                raise CommandFailed(f"{len(problems)} of {len(result)} document(s) not restored")
            return
        names = [collection] if collection else handle.failed_collections()
        if not names:
            raise click.UsageError(
                f"name the collection whose failed migrations to list in {handle.prefix}"
            )
        rows: Iterator[dict[str, Any]] = (
            item.as_dict() for name in names for item in handle.collection(name).failed()
        )
        output.rows(rows)


# --- migrate-local -------------------------------------------------------------------------------


@cli.command(
    "migrate-local",
    epilog=_examples(
        "migrate-local ~/.parlant --dry-run",
        "migrate-local ~/.parlant --table",
        note="Copies every document of Parlant's JSON-file stores (sessions.json, "
        "customers.json, context_variables.json) into the tables; everything is validated "
        "before the first write, and a re-run skips what is already there.",
    ),
)
@click.argument("parlant_home", metavar="PARLANT_HOME",
                type=click.Path(exists=True, file_okay=False))
@click.option("--dry-run", is_flag=True, help="report what would be written; write nothing")
@click.option("--prefix", "prefixes", multiple=True, callback=parse_store_prefixes,
              metavar="PREFIX=STORE", help="a store's table prefix when it is not the default; "
              "repeatable")
@connection_options
@output_options(csv=False, columns=False)
def migrate_local_command(parlant_home: str, dry_run: bool, prefixes: dict[str, str],
                          target: Target, output: Output) -> None:  # fmt: skip
    """Move the documents of Parlant's local JSON-file stores into Supabase."""
    from pathlib import Path

    from .migrate_local import migrate_local

    with target.connect() as conn:
        report = migrate_local(Path(parlant_home), conn, dry_run=dry_run, prefixes=prefixes)
    if output.format == "table":
        sys.stdout.write(report.summary() + "\n")
    else:
        output.object(report.as_dict())
        sys.stderr.write(report.summary() + "\n")
    if not report.ok:
        raise CommandFailed(
            f"{report.conflicts} document(s) already in the tables with other content were "
            "left as they are (listed above)"
        )


# --- local up ------------------------------------------------------------------------------------


@cli.group("local", epilog=_examples("local up", "local up --data-dir .supabase --env-file .env"))
def local_group() -> None:
    """The local Supabase stand-in (PostgreSQL + a PostgREST-protocol gateway)."""


@local_group.command(
    "up",
    epilog=_examples(
        "local up",
        "local up --data-dir .supabase --env-file .env",
        note="Prints NAME=value lines (SUPABASE_URL, SUPABASE_KEY = the sb_secret_ key, …, "
        "DATABASE_URL), then `ready`, and runs until Ctrl-C (exit 130) or SIGTERM (exit 0). "
        "Load the file in a shell with: set -a; . .env; set +a",
    ),
)
@click.option("--port", type=click.IntRange(0, 65535), metavar="PORT",
              help="API port on 127.0.0.1 (default: a free port; with --data-dir the port of "
              "the previous run when it is free)")
@click.option("--data-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="keep the database, keys and ports in DIR and reuse them on the next run "
              "(default: a temporary directory deleted on exit)")
@click.option("--env-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="also write the NAME=value lines to FILE (mode 0600), loadable with "
              "`set -a; . FILE`")
@click.option("--no-schema", is_flag=True,
              help="do not create the adapter's tables and functions (default: create them "
              "for the three Parlant stores)")
@click.option("--max-rows", type=click.IntRange(min=1), metavar="N",
              help="server-side cap on rows per response, like PostgREST's db-max-rows "
              "(default: 1000, Supabase's default)")
@click.option("--locale", metavar="LOCALE",
              help="cluster locale for a new data dir: C.UTF-8 as hosted Supabase (default), "
              "an installed libc locale, or icu:<tag> (e.g. icu:en-US)")
@click.option("--max-request-line", type=int, callback=parse_request_line, metavar="BYTES",
              help="longest request line in bytes before 414, as Kong/nginx (default: 8192; "
              "0: no limit)")
@click.option("--schemas", callback=parse_schemas, metavar="NAMES",
              help="comma-separated exposed schemas, the first is the default and gets the "
              "tables (default: public)")
@click.option("--no-ddl-watch", is_flag=True,
              help="do not install Supabase's schema-reload event triggers (plain PostgREST: "
              "only NOTIFY pgrst, 'reload schema' reloads)")
@click.option("--pgvector", is_flag=True,
              help="PostgreSQL 18 with pgvector (extension vector in schema extensions); needs "
              "pip install 'parlant-supabase-sync[vector]'")
def local_up_command(**options: Any) -> None:
    """Start the local stand-in; print the environment; run until Ctrl-C."""
    from .local.cli_up import run_local_up

    code = run_local_up(**options)
    if code:
        raise click.exceptions.Exit(code)
