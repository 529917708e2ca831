"""Fixtures for the fault-injection tests: the stand-in, fresh tables, and FaultProxy instances.

Every proxy made by ``make_proxy`` is stopped at the end of its test; every table is created
under a prefix of its own, so the tests share the session's stand-in without interfering.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from faults_helpers import FreshTable, MakeProxy, create_table

from parlant_supabase_sync.ddl import generate_functions
from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.local.faultproxy import FaultProxy

# The chaos cases run on asyncio unless ANYIO_BACKENDS narrows or widens it (the mixed case is
# parametrized over both backends itself).
_BACKENDS = [b for b in os.environ.get("ANYIO_BACKENDS", "asyncio").split(",") if b]


@pytest.fixture(params=_BACKENDS[:1])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def fault_stand_in(local_supabase: LocalSupabase) -> LocalSupabase:
    local_supabase.execute_sql(generate_functions())
    return local_supabase


@pytest.fixture
def fresh_table(fault_stand_in: LocalSupabase) -> FreshTable:
    """A new, empty `docs` collection table under a unique prefix."""
    return create_table(fault_stand_in)



@pytest.fixture
def make_proxy(fault_stand_in: LocalSupabase) -> Iterator[MakeProxy]:
    """``make_proxy(**FaultProxy options)``: a started proxy in front of the stand-in."""
    proxies: list[FaultProxy] = []

    def make(**options: Any) -> FaultProxy:
        options.setdefault("deadline", 300.0)
        proxy = FaultProxy(fault_stand_in.url, **options).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()
