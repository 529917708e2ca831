"""What the console script writes: rows in four formats, progress, and the one-line errors.

This module is the one place that turns an exception into a line on stderr and an exit code
(0 ok, 1 failure, 2 usage error, 130 interrupted): `Group`/`Command` (click classes whose
`main` never prints a traceback for an expected failure) call `run`, which calls `describe`.
Every line it prints is scrubbed (`errors.scrub` plus the key from the environment and any
`--key` argument). Output formats: JSON (default; an array streamed as rows arrive), `--nl`
(one JSON document per line), `--csv` and `--table`, each optionally limited to `--columns`. Also the parsers of option
values shared by the verbs (`--where`, `--sort`, `--prefix PREFIX=STORE`, `local up`'s).
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, TypeVar

import click
from typing_extensions import Self

from .errors import ConfigurationError, SupabaseSyncError, UnsupportedFilter, scrub
from .naming import DEFAULT_STORES, MIRRORED_COLUMNS

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "STORES_HELP",
    "Command",
    "CommandFailed",
    "Group",
    "Output",
    "Progress",
    "State",
    "configure_logging",
    "describe",
    "dumps",
    "one_line",
    "output_options",
    "parse_request_line",
    "parse_schemas",
    "parse_sort",
    "parse_store_prefixes",
    "parse_where",
    "run",
    "say",
    "state",
    "where_option",
    "write_table",
]

PROG = "parlant-supabase-sync"
STORES_HELP = ", ".join(DEFAULT_STORES)  # the store keys, as help and messages list them
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

F = TypeVar("F", bound=Callable[..., Any])


class CommandFailed(click.ClickException):
    """An expected failure; its message is the one line the user sees (exit code 1)."""

    exit_code = EXIT_FAILURE


# --- formats -----------------------------------------------------------------------------------


def dumps(value: Any) -> str:
    """Compact JSON, UTF-8 text (not \\u escapes)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _lookup(row: Mapping[str, Any], column: str) -> Any:
    """`row[column]`, or for a dotted path (`data.kind`) the nested value; None when absent."""
    if column in row:
        return row[column]
    value: Any = row
    for part in column.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return [c for c in MIRRORED_COLUMNS if c in seen] + [c for c in seen if c not in MIRRORED_COLUMNS]


def _cell(value: Any, width: int = 64) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def _numeric(values: Iterable[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in present
    )


def write_table(
    rows: Sequence[Mapping[str, Any]], out: IO[str], columns: Sequence[str] | None = None
) -> None:
    """An aligned table for people (numbers right-aligned, nested values as JSON)."""
    if not rows:
        out.write("(no rows)\n")
        return
    names = list(columns) if columns else _columns_of(rows)
    values = [[_lookup(row, name) for name in names] for row in rows]
    cells = [[_cell(value) for value in line] for line in values]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(names)]
    right = [_numeric(line[i] for line in values) for i in range(len(names))]

    def line(items: Sequence[str]) -> str:
        padded = (c.rjust(w) if r else c.ljust(w) for c, w, r in zip(items, widths, right))
        return "  ".join(padded).rstrip() + "\n"

    out.write(line(names))
    out.write("  ".join("-" * w for w in widths) + "\n")
    for item in cells:
        out.write(line(item))


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Output:
    """The output choice of one command: `format` (json, nl, csv, table) and `columns`."""

    format: str = "json"
    columns: tuple[str, ...] | None = None

    def _select(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        if self.columns is None:
            return row
        return {name: _lookup(row, name) for name in self.columns}

    def rows(self, rows: Iterable[Mapping[str, Any]], out: IO[str] | None = None) -> int:
        """Write rows; returns how many. JSON and NL stream; CSV streams when columns are given."""
        out = out or sys.stdout
        if self.format == "table":
            materialized = list(rows)
            write_table(materialized, out, self.columns)
            return len(materialized)
        if self.format == "csv":
            return self._csv(rows, out)
        count = 0
        if self.format == "nl":
            for row in rows:
                out.write(dumps(self._select(row)) + "\n")
                count += 1
            return count
        # The bracket waits for the first row, so a failing first request prints nothing.
        for row in rows:
            text = json.dumps(self._select(row), ensure_ascii=False)
            out.write(("[\n " if count == 0 else ",\n ") + text)
            count += 1
        out.write("\n]\n" if count else "[]\n")
        return count

    def _csv(self, rows: Iterable[Mapping[str, Any]], out: IO[str]) -> int:
        source: Iterable[Mapping[str, Any]] = rows
        if self.columns is None:
            materialized = list(rows)
            source, names = materialized, _columns_of(materialized)
        else:
            names = list(self.columns)
        writer = csv.writer(out, lineterminator="\n")
        count = 0
        for row in source:
            if count == 0:
                writer.writerow(names)
            writer.writerow([_csv_cell(_lookup(row, name)) for name in names])
            count += 1
        return count

    def object(self, value: Mapping[str, Any], out: IO[str] | None = None) -> None:
        """Write one object (a document, a report): indented JSON, one line, or field/value."""
        out = out or sys.stdout
        if self.format == "table":
            selected = self._select(value)
            write_table([{"field": k, "value": v} for k, v in selected.items()], out)
        elif self.format == "csv":
            self.rows([value], out)
        elif self.format == "nl":
            out.write(dumps(self._select(value)) + "\n")
        else:
            out.write(json.dumps(self._select(value), ensure_ascii=False, indent=2) + "\n")


def _split_columns(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names:
        raise click.BadParameter("name at least one column, e.g. --columns id,creation_utc")
    return names


_FORMAT_FLAGS = {
    "json": "JSON (default)",
    "nl": "newline-delimited JSON, one document per line",
    "csv": "CSV with a header row (nested values as JSON)",
    "table": "an aligned table for people",
}


def output_options(*, csv: bool = True, columns: bool = True) -> Callable[[F], F]:
    """Add --json/--nl/--csv/--table (and --columns) to a command; it receives `output`."""
    formats = [name for name in _FORMAT_FLAGS if csv or name != "csv"]

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            chosen = [name for name in formats if kwargs.pop(f"as_{name}")]
            if len(chosen) > 1:
                raise click.UsageError(
                    " and ".join(f"--{name}" for name in chosen) + " cannot be combined"
                )
            selected = kwargs.pop("columns", None)
            kwargs["output"] = Output(chosen[0] if chosen else "json", selected)
            return func(*args, **kwargs)

        decorated: Callable[..., Any] = wrapper
        if columns:
            decorated = click.option(
                "--columns",
                metavar="NAMES",
                callback=_split_columns,
                help="only these fields, comma-separated; dotted paths reach into nested "
                "objects (e.g. id,creation_utc,data.kind)",
            )(decorated)
        for name in reversed(formats):
            decorated = click.option(
                f"--{name}", f"as_{name}", is_flag=True, help=_FORMAT_FLAGS[name]
            )(decorated)
        return decorated  # type: ignore[return-value]

    return decorate


# --- progress ----------------------------------------------------------------------------------


class Progress:
    """`bulk.Progress` on stderr: a live bar per phase when stderr is a terminal, else nothing.

    With `lines=True`, when stderr is not a terminal, a line is printed each sixth of a phase
    with a known total (what the demo shows in CI logs). A phase with `total=None` counts
    without a bar. As a context manager it ends the current phase on exit.
    """

    def __init__(
        self, *, lines: bool = False, enabled: bool = True, stream: IO[str] | None = None
    ) -> None:
        self._stream = stream or sys.stderr
        self._tty = enabled and _isatty(self._stream)
        self._lines = enabled and lines and not self._tty
        self._label = ""
        self._total: int | None = None
        self._done = 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end()

    def begin(self, label: str, total: int | None) -> None:
        self.end()
        self._label, self._total, self._done = label, total, 0
        if self._tty:
            self._bar, self._task = _rich_bar(label, total, self._stream)

    def advance(self, n: int = 1) -> None:
        before, self._done = self._done, self._done + n
        if self._bar is not None:
            self._bar.update(self._task, completed=self._done)
        elif self._lines and self._total:
            step = max(1, self._total // 6)
            if self._done == self._total or self._done // step > before // step:
                self._stream.write(f"{self._label}… {self._done}/{self._total}\n")
                self._stream.flush()

    def end(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.stop()


def _isatty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _rich_bar(label: str, total: int | None, stream: IO[str]) -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn()]
    columns.append(MofNCompleteColumn() if total else TextColumn("{task.completed}"))
    bar = Progress(*columns, TimeElapsedColumn(), console=Console(file=stream), transient=False)
    task = bar.add_task(label, total=total)
    bar.start()
    return bar, task


def say(message: str, *, enabled: bool = True) -> None:
    """A status line on stderr (the demo's narration)."""
    if enabled:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


# --- errors and exit codes ---------------------------------------------------------------------


def one_line(message: str, secrets: Iterable[str | None] = ()) -> str:
    """`message` on one line, with the given secrets and anything key-shaped removed."""
    text = " ".join(str(message).split())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return scrub(text) or "(no message)"


def _usage_text(exc: click.UsageError) -> str:
    text = exc.format_message()
    path = exc.ctx.command_path if exc.ctx is not None else PROG
    return f"{text} (see `{path} --help`)"


def describe(exc: BaseException) -> tuple[int, str | None]:
    """The exit code for `exc` and the text of its line (None: print nothing).

    Unexpected exceptions also get exit code 1 and one line naming their type.
    """
    if isinstance(exc, click.UsageError):
        return EXIT_USAGE, _usage_text(exc)
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code, None
    if isinstance(exc, click.ClickException):
        return exc.exit_code, exc.format_message()
    if isinstance(exc, (KeyboardInterrupt, click.Abort)):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, (ConfigurationError, UnsupportedFilter)):
        # The transport's refusal of a public key is a runtime failure (exit_code 1).
        return int(getattr(exc, "exit_code", EXIT_USAGE)), str(exc)
    if isinstance(exc, SupabaseSyncError):
        return EXIT_FAILURE, str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return EXIT_FAILURE, (
            f"the input is not UTF-8 text ({exc.reason} at byte {exc.start} of a chunk); "
            "JSON lines must be UTF-8"
        )
    if isinstance(exc, OSError):
        return EXIT_FAILURE, str(exc)
    return EXIT_FAILURE, f"unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)"


@dataclass
class State:
    """What one run shares between the commands and `run` (click's `ctx.obj`)."""

    verbose: bool = False


def _key_arguments(args: Sequence[str]) -> Iterator[str]:
    for i, arg in enumerate(args):
        if arg == "--key" and i + 1 < len(args):
            yield args[i + 1]
        elif arg.startswith("--key="):
            yield arg.partition("=")[2]


def run(main: Callable[..., Any], args: Sequence[str] | None, prog_name: str) -> int:
    """Run a click command's `main` (standalone mode off) and return the exit code."""
    from .settings import read_environment

    argv = list(sys.argv[1:] if args is None else args)
    _utf8_streams()
    state = State()
    secrets = [read_environment().get("SUPABASE_KEY"), *_key_arguments(argv)]
    try:
        result = main(argv, prog_name, obj=state)
    except SystemExit as exc:  # shell completion exits
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else 2)
    except BrokenPipeError:
        _silence_stdout()  # the reader (`| head`) went away
        return EXIT_FAILURE
    except BaseException as exc:  # noqa: BLE001 - the promise is one line, not a traceback
        code, text = describe(exc)
        unexpected = code == EXIT_FAILURE and not isinstance(
            exc, (click.ClickException, SupabaseSyncError, OSError, UnicodeDecodeError)
        )
        if unexpected and state.verbose:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        if text is not None:
            sys.stderr.write(f"{prog_name}: error: {one_line(text, secrets)}\n")
        return code
    return result if isinstance(result, int) else EXIT_OK


def _silence_stdout() -> None:
    try:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed pipe
    except OSError:
        pass


def _utf8_streams() -> None:
    # JSON is UTF-8 (RFC 8259); export/import must round-trip whatever the locale says.
    for stream in (sys.stdin, sys.stdout):
        reconfigure = getattr(stream, "reconfigure", None)
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if reconfigure is not None and encoding != "utf8":
            reconfigure(encoding="utf-8")


def _main(
    main: Callable[..., Any],
    args: Sequence[str] | None,
    prog_name: str | None,
    complete_var: str | None,
    standalone_mode: bool,
    extra: Mapping[str, Any],
) -> Any:
    def invoke(argv: list[str], name: str, obj: State) -> Any:
        return main(argv, name, complete_var, standalone_mode=False, obj=obj, **extra)

    code = run(invoke, args, prog_name or PROG)
    if standalone_mode:
        sys.exit(code)
    return code


class Group(click.Group):
    """A click group whose `main` reports failures through `run` (one line, an exit code)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        return _main(super().main, args, prog_name, complete_var, standalone_mode, extra)


class Command(click.Command):
    """A click command run on its own (the demo) with `Group`'s one-line errors."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        return _main(super().main, args, prog_name, complete_var, standalone_mode, extra)


def state(ctx: click.Context) -> State:
    """The run's shared state (created when the command runs outside `run`, e.g. in tests)."""
    return ctx.ensure_object(State)


def configure_logging(verbose: bool, prog: str = PROG) -> None:
    """-v: the package's log records (retries, …) on stderr; else none (one-line contract)."""
    logger = logging.getLogger("parlant_supabase_sync")
    if verbose:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{prog}: %(levelname)s: %(message)s"))
        logger.setLevel(logging.INFO)
    else:
        # With no handler anywhere, Python's last-resort handler would print warnings. Records
        # still propagate to handlers an embedding application configured.
        handler = logging.NullHandler()
    for previous in [h for h in logger.handlers if getattr(h, "_parlant_cli", False)]:
        logger.removeHandler(previous)  # the CLI may run several times in one process (tests)
    handler._parlant_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)


# --- option values (click callbacks: a bad value is a usage error, exit 2) ---------------


def parse_where(ctx: click.Context, param: click.Parameter, text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None

    def refuse_constant(name: str) -> Any:
        raise click.BadParameter(f"{name} is not a valid filter value")

    try:
        value = json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"not valid JSON ({exc.msg} at column {exc.colno}); "
            'example: --where \'{"session_id": {"$eq": "s1"}}\''
        ) from None
    if not isinstance(value, dict):
        raise click.BadParameter(
            'must be a JSON object such as \'{"session_id": {"$eq": "s1"}}\', '
            f"not {type(value).__name__}"
        )
    return value


def parse_sort(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> list[tuple[str, str]] | None:
    result: list[tuple[str, str]] = []
    for item in values:
        name, _, direction = item.partition(":")
        direction = (direction or "asc").lower()
        if not name or direction not in ("asc", "desc"):
            raise click.BadParameter(f"{item!r}: use FIELD, FIELD:asc or FIELD:desc")
        result.append((name, direction))
    return result or None


where_option = click.option(
    "--where", metavar="JSON", callback=parse_where, help="a Parlant Where filter as JSON"
)


def parse_store_prefixes(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> dict[str, str]:
    prefixes: dict[str, str] = {}
    for value in values:
        prefix, _, key = value.partition("=")
        if not prefix or key not in DEFAULT_STORES:
            raise click.BadParameter(
                f"{value!r}: use PREFIX=STORE with STORE one of {STORES_HELP}, "
                "e.g. acme_sessions_=sessions"
            )
        prefixes[key] = prefix
    return prefixes


def parse_request_line(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value != 0 and value < 16:
        raise click.BadParameter("must be 0 (no limit) or at least 16")
    return value


def parse_schemas(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    if not names:
        raise click.BadParameter("name at least one schema")
    return names
