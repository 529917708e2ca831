"""Helpers for the CLI tests (imported by name: `from cli_helpers import ...`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parlant_supabase_sync.naming import table_names

if TYPE_CHECKING:
    from parlant_supabase_sync.local.stack import LocalSupabase

PROG = "parlant-supabase-sync"
SCRIPT = Path(sys.executable).with_name(PROG)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line]


RunCli = Callable[..., Result]


def run_script(
    args: list[str],
    env: Mapping[str, str],
    *,
    input: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 120,
) -> Result:
    completed = subprocess.run(
        [str(SCRIPT), *args],
        check=False,
        env=dict(env),
        input=input,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        cwd=cwd,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


_OUR_PREFIXES = ("SUPABASE_", "PARLANT_SUPABASE_")


def run_in_process(
    args: list[str], env: Mapping[str, str], *, input: str | None = None
) -> Result:
    """The click group under CliRunner with exactly `env`'s variables of this package."""
    from click.testing import CliRunner

    from parlant_supabase_sync.cli import cli

    overrides: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith(_OUR_PREFIXES)
    }
    overrides.update(
        {k: v for k, v in env.items() if k.startswith(_OUR_PREFIXES) or k == "DATABASE_URL"}
    )
    result = CliRunner().invoke(cli, args, input=input, env=overrides, prog_name=PROG)
    return Result(result.exit_code, result.stdout, result.stderr)


@dataclass
class StoreTables:
    """A sessions-shaped store under a unique prefix, created by the generator's SQL."""

    prefix: str
    stack: LocalSupabase

    def table(self, collection: str) -> str:
        return table_names(self.prefix, collection).main

    def failed_table(self, collection: str) -> str:
        failed = table_names(self.prefix, collection).failed
        assert failed is not None
        return failed

    def insert_sql(self, collection: str, documents: list[dict[str, Any]]) -> None:
        """Bulk insert through SQL (fast), columns mirrored exactly as rows.document_to_row does."""
        from parlant_supabase_sync.rows import document_to_row

        rows = [document_to_row(d) for d in documents]
        payload = json.dumps(rows).replace("'", "''")
        self.stack.execute_sql(
            f'INSERT INTO public."{self.table(collection)}" '
            "(id, version, creation_utc, session_id, customer_id, agent_id, data) "
            "SELECT id, version, creation_utc, session_id, customer_id, agent_id, data "
            f"FROM jsonb_populate_recordset(NULL::public.\"{self.table(collection)}\", '{payload}'::jsonb)"
        )

    def count_rows(self, table: str) -> int:
        return int(self.stack.query(f'SELECT count(*) FROM public."{table}"')[0][0])


def event(i: int, session: str = "s1", **extra: Any) -> dict[str, Any]:
    """An event-shaped document with varied JSON types."""
    doc: dict[str, Any] = {
        "id": f"ev-{i:06d}",
        "version": "0.9.0",
        "creation_utc": f"2025-01-01T00:{i // 3600 % 60:02d}:{i // 60 % 60:02d}.{i % 60:06d}+00:00",
        "session_id": session,
        "source": "customer" if i % 2 else "ai_agent",
        "kind": "message",
        "offset": i,
        "trace_id": f"tr-{i}",
        "data": {"message": f'hello ünïcode "{i}" \n\t', "participant": {"display_name": None}},
        "metadata": {"score": i / 7, "tags": ["a", "b"]} if i % 3 else None,
        "deleted": i % 10 == 0,
    }
    doc.update(extra)
    return doc
