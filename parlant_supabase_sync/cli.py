"""The `parlant-supabase-sync` console script.

Every verb is a thin call into `parlant_supabase_sync.api`; this module only parses arguments,
formats output (JSON by default, `--nl` newline-delimited, `--table` for humans) and turns
expected failures into one line on stderr with exit code 2 (usage) or 1 (runtime).
Heavy modules are imported inside the commands so `--help` is fast and works without extras.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from parlant_supabase_sync.api import Collection, Connection

PROG = "parlant-supabase-sync"
_DEFAULT_STORES_HELP = "sessions, customers, context_variables"


class UsageError(Exception):
    """A bad argument value found after parsing (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (`usage` is what `--help` is for)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


# ---------------------------------------------------------------------------------------------
# output


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_LEADING_COLUMNS = ("id", "creation_utc", "version", "session_id", "customer_id", "agent_id")


def _cell(value: Any, width: int = 64) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def _write_table(rows: Sequence[Mapping[str, Any]], out: IO[str]) -> None:
    if not rows:
        out.write("(no rows)\n")
        return
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    columns = [c for c in _LEADING_COLUMNS if c in seen] + [
        c for c in seen if c not in _LEADING_COLUMNS
    ]
    cells = [[_cell(row.get(name, "")) for name in columns] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(columns)]
    out.write("  ".join(name.ljust(w) for name, w in zip(columns, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for line in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() + "\n")


def _emit_rows(rows: Iterable[Mapping[str, Any]], fmt: str, out: IO[str] | None = None) -> int:
    """Write rows as a JSON array (streamed), JSON lines or a table; returns the row count."""
    out = out or sys.stdout
    count = 0
    if fmt == "table":
        materialized = list(rows)
        _write_table(materialized, out)
        return len(materialized)
    if fmt == "nl":
        for row in rows:
            out.write(_dumps(row) + "\n")
            count += 1
        return count
    # The bracket waits for the first row, so a failing first request prints nothing.
    for row in rows:
        out.write(("[\n " if count == 0 else ",\n ") + json.dumps(row, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "[]\n")
    return count


def _emit_object(value: Mapping[str, Any], fmt: str) -> None:
    if fmt == "table":
        _write_table([{"field": k, "value": v} for k, v in value.items()], sys.stdout)
    elif fmt == "nl":
        sys.stdout.write(_dumps(value) + "\n")
    else:
        sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _format(args: argparse.Namespace) -> str:
    return str(getattr(args, "format", "json"))


class _Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, label: str, total: int | None, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty()
        self._label = label
        self._total = total
        self._done = 0
        self._last_drawn = -1

    def advance(self, n: int = 1) -> None:
        self._done += n
        if self._enabled and (self._done - self._last_drawn >= 200 or self._done == self._total):
            self._draw()

    def _draw(self) -> None:
        self._last_drawn = self._done
        if self._total:
            filled = int(30 * min(self._done, self._total) / self._total)
            bar = "#" * filled + "." * (30 - filled)
            text = f"\r{self._label} [{bar}] {self._done}/{self._total}"
        else:
            text = f"\r{self._label} {self._done}"
        self._stream.write(text)
        self._stream.flush()

    def close(self) -> None:
        if self._enabled and self._last_drawn >= 0:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()


# ---------------------------------------------------------------------------------------------
# argument helpers


def _parse_where(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None

    def refuse_constant(name: str) -> Any:
        raise UsageError(f"--where: {name} is not a valid filter value")

    try:
        value = json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--where is not valid JSON ({exc.msg} at column {exc.colno}); "
            'example: --where \'{"session_id": {"$eq": "s1"}}\''
        ) from None
    if not isinstance(value, dict):
        raise UsageError(
            '--where must be a JSON object such as \'{"session_id": {"$eq": "s1"}}\', '
            f"not {type(value).__name__}"
        )
    return value


def _parse_sort(values: Sequence[str] | None) -> list[tuple[str, str]] | None:
    if not values:
        return None
    result: list[tuple[str, str]] = []
    for item in values:
        field, _, direction = item.partition(":")
        direction = (direction or "asc").lower()
        if not field or direction not in ("asc", "desc"):
            raise UsageError(f"--sort {item!r}: use FIELD, FIELD:asc or FIELD:desc")
        result.append((field, direction))
    return result


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _connect(args: argparse.Namespace) -> Connection:
    from parlant_supabase_sync.api import connect

    return connect(url=args.url, key=args.key, schema=args.schema)


def _collection(conn: Connection, args: argparse.Namespace) -> Collection:
    return conn.store(args.store).collection(args.collection)


# ---------------------------------------------------------------------------------------------
# commands


def _cmd_sql(args: argparse.Namespace) -> int:
    from parlant_supabase_sync.api import schema_sql

    if args.functions_only and args.upgrade:
        raise UsageError("--functions-only and --upgrade cannot be combined")
    text, warnings = schema_sql(
        args.prefix or None,
        functions_only=args.functions_only,
        upgrade=args.upgrade,
        anon_policy=args.anon_policy,
        schema=args.schema or os.environ.get("SUPABASE_SCHEMA") or "public",
        keep_seed_policies=args.keep_seed_policies,
    )
    for warning in warnings:
        sys.stderr.write(f"{PROG}: warning: {' '.join(warning.split())}\n")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    with _connect(args) as conn:
        report = conn.check(args.prefix or None)
    fmt = _format(args)
    data = report.as_dict()
    if fmt == "json":
        _emit_object(data, fmt)
    elif fmt == "nl":
        sys.stdout.write(_dumps(data) + "\n")
    else:
        _write_table(report.rows(), sys.stdout)
        for note in report.notes:
            sys.stdout.write(f"note: {note}\n")
        sys.stdout.write(f"next step: {report.next_step}\n")
    if not report.ok:
        sys.stderr.write(f"{PROG}: {report.next_step}\n")
        return 1
    return 0


def _cmd_ls(args: argparse.Namespace) -> int:
    with _connect(args) as conn:
        rows = conn.overview(args.store or None, counts=not args.no_counts)
        _emit_rows([row.as_dict() for row in rows], _format(args))
    return 0


def _cmd_count(args: argparse.Namespace) -> int:
    where = _parse_where(args.where)
    with _connect(args) as conn:
        n = _collection(conn, args).count(where)
    if _format(args) == "table":
        _write_table([{"store": args.store, "collection": args.collection, "count": n}], sys.stdout)
    else:
        sys.stdout.write(f"{n}\n")
    return 0


def _cmd_find(args: argparse.Namespace) -> int:
    where = _parse_where(args.where)
    sort = _parse_sort(args.sort)
    from parlant_supabase_sync.api import encode_cursor

    with _connect(args) as conn:
        coll = _collection(conn, args)
        if args.limit is None and args.cursor is None:
            _emit_rows(coll.rows(where, sort=sort), _format(args))
            return 0
        result = coll.find(where, limit=args.limit, cursor=args.cursor, sort=sort)
        _emit_rows(result.items, _format(args))
    if result.has_more and result.next_cursor is not None:
        sys.stderr.write(f"more documents: --cursor {encode_cursor(result.next_cursor)}\n")
    elif result.has_more:
        sys.stderr.write(
            f"more documents: {len(result.items)} of {result.total_count} shown; raise --limit "
            "or drop it to list every match\n"
        )
    return 0


def _cmd_get(args: argparse.Namespace) -> int:
    with _connect(args) as conn:
        doc = _collection(conn, args).get(args.id)
    if doc is None:
        sys.stderr.write(
            f"{PROG}: no document with id {args.id!r} in {args.store}/{args.collection}; "
            f"list ids with `{PROG} find {args.store} {args.collection} --table`\n"
        )
        return 1
    _emit_object(doc, _format(args))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    out_path: str | None = args.output
    with _connect(args) as conn:
        store = conn.store(args.store)
        names = list(args.collections) or list(store.collections)
        if not names:
            raise UsageError(f"name the collections to export from {store.prefix}")
        targets: list[tuple[str, str | None]]
        if len(names) > 1 or not args.collections:
            if out_path is None or out_path == "-":
                raise UsageError(
                    "several collections need --output DIR (one <collection>.jsonl per "
                    "collection); name one collection to write to stdout"
                )
            os.makedirs(out_path, exist_ok=True)
            targets = [(n, os.path.join(out_path, f"{n}.jsonl")) for n in names]
        else:
            targets = [(names[0], out_path)]
        summary: list[dict[str, Any]] = []
        for name, path in targets:
            coll = store.collection(name)
            n = _export_one(coll, path, page_size=args.page_size)
            summary.append({"collection": name, "documents": n, "file": path or "<stdout>"})
    if out_path not in (None, "-"):
        for item in summary:
            sys.stderr.write(
                f"exported {item['documents']} document(s) of {item['collection']} to {item['file']}\n"
            )
    return 0


def _export_one(coll: Collection, path: str | None, *, page_size: int | None) -> int:
    total = coll.count() if sys.stderr.isatty() else None
    progress = _Progress(f"export {coll.name}", total)
    n = 0
    stream: IO[str]
    partial: str | None = None
    if path is None or path == "-":
        stream = sys.stdout
    else:
        # Written beside the target and renamed at the end: a failed export leaves no file
        # that looks complete.
        partial = f"{path}.partial"
        stream = open(partial, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed below
    try:
        for doc in coll.rows(page_size=page_size):
            stream.write(_dumps(doc) + "\n")
            n += 1
            progress.advance()
        stream.flush()
    except BaseException:
        if partial is not None:
            stream.close()
            os.unlink(partial)
        raise
    finally:
        progress.close()
    if partial is not None and path is not None:
        stream.close()
        os.replace(partial, path)
    return n


def _cmd_import(args: argparse.Namespace) -> int:
    path: str | None = args.file
    with _connect(args) as conn:
        coll = _collection(conn, args)
        if path is None or path == "-":
            report = coll.import_jsonl(sys.stdin, batch_size=args.batch_size)
        else:
            try:
                stream = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - with below
            except OSError as exc:
                raise UsageError(f"cannot read {path}: {exc.strerror}") from None
            with stream:
                report = coll.import_jsonl(
                    stream,
                    batch_size=args.batch_size,
                    progress=_Progress(f"import {coll.name}", None),
                )
    _emit_object(report.as_dict(), _format(args) if _format(args) != "table" else "json")
    for problem in report.problems(limit=20):
        sys.stderr.write(f"{problem}\n")
    sys.stderr.write(f"{report.summary()}\n")
    return 0 if report.ok else 1


def _cmd_failed(args: argparse.Namespace) -> int:
    with _connect(args) as conn:
        store = conn.store(args.store)
        if args.restore:
            if args.collection is None:
                raise UsageError("--restore needs the COLLECTION argument")
            result = store.collection(args.collection).restore_failed(args.restore)
            _emit_rows([item.as_dict() for item in result], _format(args))
            problems = [item for item in result if not item.restored]
            for item in problems:
                sys.stderr.write(f"{PROG}: {item.id}: {item.message}\n")
            return 1 if problems else 0
        names = [args.collection] if args.collection else store.failed_collections()
        if not names:
            raise UsageError(
                f"name the collection whose failed migrations to list in {store.prefix}"
            )
        rows: Iterator[dict[str, Any]] = (
            item.as_dict() for name in names for item in store.collection(name).failed()
        )
        _emit_rows(rows, _format(args))
    return 0


def _cmd_local_up(args: argparse.Namespace) -> int:
    from parlant_supabase_sync.local.cli_up import run_local_up

    return int(run_local_up(list(args.passthrough)))


def _cmd_demo(args: argparse.Namespace) -> int:
    from parlant_supabase_sync.demo import main as demo_main

    return int(demo_main(list(args.passthrough)))


# ---------------------------------------------------------------------------------------------
# parser


def _connection_options() -> _Parser:
    # SUPPRESS lets the options appear before or after the verb without one overwriting the other.
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("connection (default: environment)")
    group.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="project URL, e.g. https://<ref>.supabase.co (default: $SUPABASE_URL)",
    )
    group.add_argument(
        "--key",
        default=argparse.SUPPRESS,
        metavar="KEY",
        help="API key (discouraged: visible in the process list; prefer $SUPABASE_KEY)",
    )
    group.add_argument(
        "--schema",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help="database schema exposed by the API (default: $SUPABASE_SCHEMA or public)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log retries and other library messages on stderr",
    )
    return parent


def _output_options() -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("output").add_mutually_exclusive_group()
    group.add_argument(
        "--json", dest="format", action="store_const", const="json", help="JSON (default)"
    )
    group.add_argument(
        "--nl",
        dest="format",
        action="store_const",
        const="nl",
        help="newline-delimited JSON, one document per line",
    )
    group.add_argument(
        "--table",
        dest="format",
        action="store_const",
        const="table",
        help="an aligned table for humans",
    )
    parent.set_defaults(format="json")
    return parent


def _store_collection(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "store",
        metavar="STORE",
        help=f"store key ({_DEFAULT_STORES_HELP}) or table prefix, e.g. parlant_sessions_",
    )
    p.add_argument("collection", metavar="COLLECTION", help="collection name, e.g. events")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    conn = _connection_options()
    out = _output_options()
    parser = _Parser(
        prog=PROG,
        description="Inspect and maintain Parlant data stored in Supabase.",
        formatter_class=_Formatter,
        parents=[_connection_options()],
        epilog=(
            "examples:\n"
            f"  {PROG} sql > schema.sql\n"
            f"  {PROG} check\n"
            f'  {PROG} find sessions events --where \'{{"session_id": {{"$eq": "s1"}}}}\' --nl\n\n'
            "credentials come from SUPABASE_URL and SUPABASE_KEY; "
            f"run `{PROG} VERB --help` for each verb."
        ),
    )
    from parlant_supabase_sync import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    verbs.required = True

    def verb(
        name: str,
        help_text: str,
        examples: Sequence[str],
        parents: Sequence[_Parser] = (),
        note: str = "",
    ) -> argparse.ArgumentParser:
        epilog = (
            "example"
            + ("s" if len(examples) > 1 else "")
            + ":\n"
            + "".join(f"  {PROG} {e}\n" for e in examples)
        )
        if note:
            epilog += "\n" + note
        return verbs.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=epilog,
            formatter_class=_Formatter,
            parents=list(parents),
        )

    p = verb(
        "sql",
        "print the SQL that creates the tables and functions",
        [
            "sql > schema.sql",
            "sql --prefix acme_sessions_ --functions-only",
            "sql --upgrade > upgrade.sql",
        ],
        note="Run the output once in the Supabase SQL editor (Dashboard → SQL Editor).",
    )
    p.add_argument(
        "--prefix",
        action="append",
        metavar="PREFIX",
        help=f"store key or table prefix; repeatable (default: {_DEFAULT_STORES_HELP})",
    )
    p.add_argument("--functions-only", action="store_true", help="only the SQL functions")
    p.add_argument(
        "--upgrade",
        action="store_true",
        help="the upgrade script for databases set up with the older adapter's SQL",
    )
    p.add_argument(
        "--keep-seed-policies",
        action="store_true",
        help="with --upgrade: keep the older adapter's allow-all policies (warns; anyone with "
        "the anon key keeps full access)",
    )
    p.add_argument(
        "--anon-policy",
        choices=("none", "allow-all", "per-customer"),
        default="none",
        help="row-level-security policy for the anon role (default: none)",
    )
    p.add_argument(
        "--schema",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help="database schema for the objects (default: $SUPABASE_SCHEMA or public)",
    )
    p.set_defaults(func=_cmd_sql)

    p = verb(
        "check",
        "check tables, functions and the key; say what to do next",
        ["check", "check --table", "check --prefix acme_sessions_"],
        parents=[conn, out],
        note="Exits with 1 when something is missing.",
    )
    p.add_argument(
        "--prefix",
        action="append",
        metavar="PREFIX",
        help=f"store key or table prefix; repeatable (default: {_DEFAULT_STORES_HELP})",
    )
    p.set_defaults(func=_cmd_check)

    p = verb(
        "ls",
        "list stores, collections, tables and document counts",
        ["ls --table", "ls sessions"],
        parents=[conn, out],
    )
    p.add_argument(
        "store",
        nargs="*",
        metavar="STORE",
        help="only these stores (default: the three Parlant stores)",
    )
    p.add_argument("--no-counts", action="store_true", help="skip the document counts")
    p.set_defaults(func=_cmd_ls)

    p = verb(
        "count",
        "count documents, optionally matching a filter",
        ["count sessions events", 'count sessions events --where \'{"deleted": {"$eq": false}}\''],
        parents=[conn, out],
    )
    _store_collection(p)
    p.add_argument("--where", metavar="JSON", help="a Parlant Where filter as JSON")
    p.set_defaults(func=_cmd_count)

    p = verb(
        "find",
        "print documents matching a filter",
        [
            'find sessions events --where \'{"session_id": {"$eq": "s1"}}\' --nl',
            "find sessions sessions --limit 10 --sort creation_utc:desc --table",
        ],
        parents=[conn, out],
        note="With --limit, the cursor of the next page is printed on stderr.",
    )
    _store_collection(p)
    p.add_argument("--where", metavar="JSON", help="a Parlant Where filter as JSON")
    p.add_argument("--limit", type=_non_negative_int, metavar="N", help="at most N documents")
    p.add_argument(
        "--sort",
        action="append",
        metavar="FIELD[:asc|desc]",
        help="sort key; repeatable (default: creation_utc, id ascending)",
    )
    p.add_argument(
        "--cursor",
        metavar="CURSOR",
        help="continue after this cursor (from a previous --limit page)",
    )
    p.set_defaults(func=_cmd_find)

    p = verb(
        "get", "print one document by id", ["get sessions sessions s-123"], parents=[conn, out]
    )
    _store_collection(p)
    p.add_argument("id", metavar="ID", help="document id")
    p.set_defaults(func=_cmd_get)

    p = verb(
        "export",
        "write collections as JSON lines (streamed page by page)",
        ["export sessions events > events.jsonl", "export sessions --output backup/sessions"],
        parents=[conn],
        note="Several collections (or none named: all of the store's) need --output DIR.",
    )
    p.add_argument(
        "store", metavar="STORE", help=f"store key ({_DEFAULT_STORES_HELP}) or table prefix"
    )
    p.add_argument(
        "collections", nargs="*", metavar="COLLECTION", help="collections (default: all)"
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="file (one collection) or directory (default: stdout)",
    )
    p.add_argument("--page-size", type=_positive_int, metavar="N", help="documents per request")
    p.set_defaults(func=_cmd_export)

    p = verb(
        "import",
        "load JSON lines into a collection (idempotent, validated per batch)",
        ["import sessions events events.jsonl", "import sessions events < events.jsonl"],
        parents=[conn, out],
        note=(
            "Identical existing documents are skipped; a different document with the same id is\n"
            "reported and left alone. A batch is written only when every line in it is valid."
        ),
    )
    _store_collection(p)
    p.add_argument("file", nargs="?", metavar="FILE", help="JSON-lines file (default: stdin)")
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=500,
        metavar="N",
        help="documents per request (default: 500)",
    )
    p.set_defaults(func=_cmd_import)

    p = verb(
        "failed",
        "list documents that failed migration, or restore them",
        [
            "failed sessions",
            "failed sessions events --table",
            "failed sessions events --restore ev-1 ev-2",
        ],
        parents=[conn, out],
        note="--restore inserts the (fixed) documents into the main table, then removes them\nfrom the failed-migrations table.",
    )
    p.add_argument(
        "store", metavar="STORE", help=f"store key ({_DEFAULT_STORES_HELP}) or table prefix"
    )
    p.add_argument("collection", nargs="?", metavar="COLLECTION", help="collection (default: all)")
    p.add_argument("--restore", nargs="+", metavar="ID", help="move these documents back")
    p.set_defaults(func=_cmd_failed)

    p = verb("local", "the local Supabase stand-in", ["local up"])
    local_verbs = p.add_subparsers(dest="local_verb", metavar="ACTION", parser_class=_Parser)
    local_verbs.required = True
    up = local_verbs.add_parser(
        "up",
        help="start PostgreSQL and the gateway; print the environment; run until Ctrl-C",
        description="Start the local stand-in (PostgreSQL + PostgREST-protocol gateway).",
        epilog=f"example:\n  {PROG} local up\n\nOther options are passed to the launcher: `{PROG} local up -- --help`.",
        formatter_class=_Formatter,
    )
    up.set_defaults(func=_cmd_local_up, passthrough=[])

    p = verb(
        "demo",
        "run a Parlant scenario against Supabase (or the local stand-in) and report",
        ["demo"],
        note=f"Other options are passed to the demo: `{PROG} demo -- --help`.",
    )
    p.set_defaults(func=_cmd_demo, passthrough=[])
    return parser


_PASSTHROUGH = {"demo", "local"}


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    args, extras = parser.parse_known_args(argv)
    if extras:
        if getattr(args, "verb", None) not in _PASSTHROUGH:
            raise UsageError(f"unrecognized arguments: {' '.join(extras)} (see `{PROG} --help`)")
        args.passthrough = extras[1:] if extras[0] == "--" else extras
    for name in ("url", "key", "schema"):
        if not hasattr(args, name):
            setattr(args, name, None)
    if not hasattr(args, "verbose"):
        args.verbose = False
    return args


def _configure_logging(verbose: bool) -> None:
    import logging

    logger = logging.getLogger("parlant_supabase_sync")
    if verbose:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
        logger.setLevel(logging.INFO)
    else:
        # Retries and similar warnings would break the one-line error contract: with no
        # handler anywhere, Python's last-resort handler would print them. Records still
        # propagate to handlers an embedding application configured.
        handler = logging.NullHandler()
    for previous in [h for h in logger.handlers if getattr(h, "_parlant_cli", False)]:
        logger.removeHandler(previous)  # main() may run several times in one process (tests)
    handler._parlant_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)


def _utf8_streams() -> None:
    # JSON is UTF-8 (RFC 8259); export/import must round-trip whatever the locale says.
    for stream in (sys.stdin, sys.stdout):
        reconfigure = getattr(stream, "reconfigure", None)
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if reconfigure is not None and encoding != "utf8":
            reconfigure(encoding="utf-8")


def _one_line(message: str, secrets: Iterable[str | None]) -> str:
    from parlant_supabase_sync.errors import scrub

    text = " ".join(str(message).split())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return scrub(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _utf8_streams()
    parser = build_parser()
    secrets = [os.environ.get("SUPABASE_KEY")]
    try:
        args = _parse(parser, argv)
        secrets.append(getattr(args, "key", None))
        _configure_logging(args.verbose)
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: error: {_one_line(str(exc), secrets)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; silence the flush at interpreter exit.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 1
    except Exception as exc:
        code = _expected_failure_code(exc)
        if code is None:
            raise
        message = str(exc)
        if isinstance(exc, UnicodeDecodeError):
            message = (
                f"the input is not UTF-8 text ({exc.reason} at byte {exc.start} of a chunk); "
                "JSON lines must be UTF-8"
            )
        sys.stderr.write(f"{PROG}: error: {_one_line(message, secrets)}\n")
        return code


def _expected_failure_code(exc: BaseException) -> int | None:
    try:
        from parlant_supabase_sync import errors
    except ImportError:  # pragma: no cover - the package is always importable
        return None
    if isinstance(exc, (errors.ConfigurationError, errors.UnsupportedFilter)):
        return int(getattr(exc, "exit_code", 2))  # 1: the transport refused a public key
    if isinstance(exc, errors.SupabaseSyncError):
        return 1
    if isinstance(exc, (OSError, UnicodeDecodeError)):
        return 1
    return None


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
