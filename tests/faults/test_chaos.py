"""Chaos through the async facade: real faults from FaultProxy, outcomes read from PostgreSQL.

One case per fault kind (a random phase, then a directed one: every operation kind with its
1st, 2nd, 3rd request faulted), a mixed case on both anyio backends, and two processes racing upserts
of one new id. Every case asserts 0 lost acknowledged writes, 0 duplicates, 0 wrong results,
0 untyped errors and no hang (see chaos_workload.py for the exact rules). Typed errors after the
adapter's retries ran out are allowed; their writes must be applied once or not at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import anyio
import pytest
from chaos_workload import OPERATIONS, Figures, chaos_logger, chaos_settings, run_chaos
from faults_helpers import FreshTable, MakeProxy

from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.local.faultproxy import FAULT_KINDS, FaultProxy

pytestmark = pytest.mark.anyio

READ_TIMEOUT = 1.0  # the client's read timeout; `hold` keeps answers longer than that
HOLD_SECONDS = 1.5
OPERATIONS_PER_KIND = int(os.environ.get("CHAOS_OPERATIONS_PER_KIND", "30"))
OPERATIONS_MIXED = int(os.environ.get("CHAOS_OPERATIONS_MIXED", "80"))
# `hold` costs a read timeout per fault; the other kinds are cheap.
RATES = {kind: 0.25 for kind in FAULT_KINDS} | {"hold": 0.12}
CASE_DEADLINE = 180.0
# The directed phase faults the 1st, 2nd, 3rd request of every operation kind once each.
DIRECTED_POSITIONS = {"hold": 2}


async def _run(
    stand_in: LocalSupabase,
    table: FreshTable,
    proxy: FaultProxy,
    *,
    operations: int,
    rate: float,
    weights: dict[str, float] | None,
    seed: int,
    directed: str | None = None,
    attempts: int = 4,
) -> Figures:
    logger, retries = chaos_logger()
    with anyio.fail_after(CASE_DEADLINE):
        figures = await run_chaos(
            settings=chaos_settings(
                proxy.url, stand_in.secret_key, read_timeout=READ_TIMEOUT, attempts=attempts
            ),
            database_url=stand_in.database_url,
            prefix=table.prefix,
            table=table.table,
            operations=operations,
            workers=2,
            seed=seed,
            logger=logger,
            on_ready=lambda: proxy.set_rate(rate, weights),
            on_done=lambda: proxy.set_rate(0.0),
            directed=(lambda n: proxy.script(directed, after=n)) if directed else None,  # type: ignore[arg-type]
            directed_positions=DIRECTED_POSITIONS.get(directed or "", 3),
            undirect=proxy.clear_script,
        )
    report = (
        f"{figures.report()}\nfaults: {proxy.counters}\nretries: {retries.retries}, "
        f"proxy requests: {proxy.requests}"
    )
    directed_operations = len(OPERATIONS) * DIRECTED_POSITIONS.get(directed or "", 3) if directed else 0
    assert figures.operations == operations + directed_operations
    assert figures.clean, report
    return figures


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_chaos_one_fault_kind(
    kind: str, fault_stand_in: LocalSupabase, fresh_table: FreshTable, make_proxy: MakeProxy
) -> None:
    seed = zlib.crc32(kind.encode())
    proxy = make_proxy(seed=seed, hold_seconds=HOLD_SECONDS, max_faults=500)
    await _run(
        fault_stand_in,
        fresh_table,
        proxy,
        operations=OPERATIONS_PER_KIND,
        rate=RATES[kind],
        weights={kind: 1.0},
        seed=seed,
        directed=kind,
    )
    assert proxy.counters[kind] > 0, "the fault never fired: raise the rate or the operations"
    assert {e.kind for e in proxy.log} == {kind}


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_chaos_mixed_faults(
    anyio_backend: str,
    fault_stand_in: LocalSupabase,
    fresh_table: FreshTable,
    make_proxy: MakeProxy,
) -> None:
    proxy = make_proxy(seed=11, hold_seconds=HOLD_SECONDS, max_faults=500)
    weights = {kind: 1.0 for kind in FAULT_KINDS} | {"hold": 0.4}
    await _run(
        fault_stand_in,
        fresh_table,
        proxy,
        operations=OPERATIONS_MIXED,
        rate=0.15,
        weights=weights,
        seed=11,
    )
    assert proxy.faults > 0


async def test_chaos_retries_run_out(
    fault_stand_in: LocalSupabase, fresh_table: FreshTable, make_proxy: MakeProxy
) -> None:
    """Two attempts and half the requests faulted: typed errors after retries must happen, and
    every write they interrupted must be applied once or not at all (resolved in PostgreSQL)."""
    proxy = make_proxy(seed=5, max_faults=500)
    weights = {"reset_before": 1.0, "reset_after": 1.0, "gateway_503": 1.0, "gateway_504": 1.0}
    figures = await _run(
        fault_stand_in,
        fresh_table,
        proxy,
        operations=40,
        rate=0.5,
        weights=weights,
        seed=5,
        attempts=2,
    )
    assert figures.typed_errors > 0, "no operation ran out of retries: raise the rate"


def test_concurrent_upserts_two_processes(fault_stand_in: LocalSupabase, fresh_table: FreshTable) -> None:
    """2 processes × 50 concurrent upserts of one new id: exactly one document, no error."""
    calls, doc_id = 50, "upsert-target"
    worker = Path(__file__).with_name("upsert_worker.py")
    start_at = time.time() + 6.0  # both children are loaded and waiting by then
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(worker),
                fault_stand_in.url,
                fault_stand_in.secret_key,
                fresh_table.prefix,
                doc_id,
                str(calls),
                repr(start_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    try:
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err[-2000:]
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(10)
    errors = [e for output in outputs for e in output["errors"]]
    results = [r for output in outputs for r in output["results"]]
    rows = fresh_table.rows()
    summary = f"{len(errors)} errors (first: {errors[:3]}), rows: {list(rows)}"
    assert errors == [], summary
    assert list(rows) == [doc_id], summary
    assert len(results) == 2 * calls
    # Parlant's upsert: the one call that inserted reports (0, 0), every other one merged (1, 1).
    counts = sorted((matched, modified) for matched, modified, _ in results)
    assert counts == [(0, 0)] + [(1, 1)] * (2 * calls - 1), counts
    assert all(document == rows[doc_id] for _, _, document in results)
