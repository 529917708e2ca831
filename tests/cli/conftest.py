"""Fixtures for the CLI tests: the installed console script run against the local stand-in."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import pytest
from cli_helpers import Result, RunCli, StoreTables, run_in_process, run_script

from parlant_supabase_sync import ddl
from parlant_supabase_sync.naming import DEFAULT_STORES, table_names

if TYPE_CHECKING:
    from parlant_supabase_sync.local.stack import LocalSupabase


_OUR_PREFIXES = ("SUPABASE_", "PARLANT_SUPABASE_")


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OUR_PREFIXES)}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.fixture(scope="session")
def cli_env(local_supabase: LocalSupabase) -> dict[str, str]:
    """The environment a user gets from `local up`, with the service_role key."""
    return {**_base_env(), **local_supabase.env()}


@pytest.fixture
def cli(cli_env: dict[str, str]) -> RunCli:
    """Run `parlant-supabase-sync ARGS...` with the stand-in's environment (+ `env=` overrides).

    `script=True` runs the installed console script in a subprocess (every verb and every
    expected failure goes through it at least once); otherwise click's CliRunner runs the same
    group in this process, which is ten times faster for the many variations.
    """

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        script: bool = False,
    ) -> Result:
        merged = {**cli_env, **(env or {})}
        if script:
            return run_script(list(args), merged, input=input)
        return run_in_process(list(args), merged, input=input)

    return run


@pytest.fixture(scope="session")
def adapter_functions(local_supabase: LocalSupabase) -> None:
    local_supabase.execute_sql(ddl.generate_functions())


@pytest.fixture
def make_store(
    local_supabase: LocalSupabase, adapter_functions: None
) -> Iterator[Callable[[], StoreTables]]:
    """Create sessions-store tables under a fresh prefix (dropped afterwards)."""
    created: list[StoreTables] = []

    def make() -> StoreTables:
        prefix = f"t{uuid.uuid4().hex[:8]}_sessions_"
        collections = DEFAULT_STORES["sessions"].collections
        local_supabase.execute_sql(ddl.generate_schema({prefix: collections}))
        store = StoreTables(prefix, local_supabase)
        created.append(store)
        return store

    yield make
    for store in created:
        names = []
        for collection in DEFAULT_STORES["sessions"].collections:
            pair = table_names(store.prefix, collection)
            names += [pair.main] + ([pair.failed] if pair.failed else [])
        local_supabase.execute_sql(
            "".join(f'DROP TABLE IF EXISTS public."{n}" CASCADE;' for n in names)
        )


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
