"""Every Parlant document store on Supabase: a real server restarted on fresh PARLANT_HOMEs, through
the SDK (``server_options()``) and through ``parlant-server``'s module mechanism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from parlant.core.tags import TagId
from test_parlant_server import comparable, free_port

from parlant_supabase_sync.naming import PARLANT_STORES, table_name

if TYPE_CHECKING:
    from parlant_supabase_sync.local import LocalSupabase

SCENARIO = Path(__file__).with_name("all_stores_scenario.py")

# What Parlant still writes under PARLANT_HOME with every store on Supabase (README, "What still
# touches the local disk"): its log, the SDK's evaluation cache (sdk.py, _CachedEvaluator) and the
# JSON-file embedding cache server.py opens unconditionally before the wiring replaces it (empty).
LOCAL_FILES = {"parlant.log", "evaluation_cache.json", "cache_embeddings.json"}


@pytest.fixture
def every_store(supabase: LocalSupabase) -> LocalSupabase:
    from parlant_supabase_sync import ddl

    supabase.execute_sql(ddl.generate_schema(ddl.every_store(), include_functions=True))
    return supabase


def run_phase(
    phase: str, supabase: LocalSupabase, home: Path, state: Path, **extra_env: str
) -> dict[str, Any]:
    home.mkdir()
    env = {**os.environ, **supabase.env(), "PARLANT_HOME": str(home), **extra_env}
    env.pop("PYTEST_CURRENT_TEST", None)
    command = [sys.executable, str(SCENARIO), phase, str(free_port()), str(free_port()), str(state)]
    result = subprocess.run(
        command, env=env, check=False, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, f"{phase} failed:\n{result.stderr[-4000:]}"
    return dict(json.loads(state.read_text()))


def untagged(value: Any) -> Any:
    """`value` without the tags of the guidelines in it.

    Parlant 3.3's GuidelineDocumentStore writes its tag associations as version 0.10.0 but its
    association loader accepts only 0.3.0 to 0.5.0, so a guideline's tags are gone after a
    restart on Parlant's own JSONFileDocumentDatabase too (checked in
    test_guideline_tags_are_lost_on_parlant_s_own_store_too); the adapter applies the loader
    the same way. Journeys keep their tags (their own collection).
    """
    if isinstance(value, list):
        return [untagged(item) for item in value]
    if not isinstance(value, dict):
        return value
    is_guideline = {"condition", "action", "criticality"} <= value.keys()
    return {k: untagged(v) for k, v in value.items() if not (is_guideline and k == "tags")}


def same_entities(read: dict[str, Any], created: dict[str, Any]) -> None:
    for name in ("agent", "tag", "journey", "canned_response", "capability"):
        assert comparable(read[name]) == comparable(created[name]), name
    for name in ("relationship", "guidelines"):
        assert comparable({name: untagged(read[name])}) == comparable(
            {name: untagged(created[name])}
        ), name
    assert read["lists"] == created["lists"]
    conversation, made = read["conversation"], created["conversation"]
    assert comparable(conversation["customer"]) == comparable(made["customer"])
    assert comparable({"e": conversation["events"]}) == comparable({"e": made["events"]})
    assert conversation["value"]["data"] == {"tier": 3}
    if "term" in created:
        assert comparable(read["term"]) == comparable(created["term"]), "term"


@pytest.mark.slow
def test_every_store_comes_back_after_restarts_on_fresh_homes(
    every_store: LocalSupabase, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    data = run_phase("sdk-create", every_store, tmp_path / "home-1", state)
    created = data["sdk-create"]
    assert created["ids"]["journey"] in created["lists"]["journeys"]
    data = run_phase("sdk-read", every_store, tmp_path / "home-2", state)
    same_entities(data["sdk-read"], created)
    data = run_phase("module-read", every_store, tmp_path / "home-3", state)
    same_entities(data["module-read"], created)

    for phase in ("sdk-create", "sdk-read", "module-read"):
        files = {Path(name).name for name in data[f"{phase}-files"]}
        assert files <= LOCAL_FILES, f"{phase} wrote {sorted(files - LOCAL_FILES)} locally"
    # The rows are in the database: every store's tables were written or read through PostgREST.
    for store, collection in (("agents", "agents"), ("guidelines", "guidelines"), ("tags", "tags")):
        table = table_name(PARLANT_STORES[store].prefix, collection)
        assert every_store.requests.count(path_contains=table) > 0, table


@pytest.fixture
def every_store_and_vectors(local_supabase_vector: LocalSupabase) -> Iterator[LocalSupabase]:
    """The pgvector stand-in with every document store's tables and the vector stores' tables
    for the demo's 64-dimension embedder; emptied afterwards for the other tests."""
    from facade_helpers import truncate_adapter_tables

    from parlant_supabase_sync import ddl
    from parlant_supabase_sync.demo_full import EMBEDDING_DIMS

    stack = local_supabase_vector
    from parlant_supabase_sync.vector_ddl import parlant_vector_schema_sql

    stack.execute_sql(ddl.generate_schema(ddl.every_store(), include_functions=True))
    stack.execute_sql(parlant_vector_schema_sql(EMBEDDING_DIMS))
    stack.requests.clear()
    yield stack
    truncate_adapter_tables(stack)


@pytest.mark.slow
def test_with_the_vector_stores_on_supabase_the_glossary_survives_restarts_too(
    every_store_and_vectors: LocalSupabase, tmp_path: Path
) -> None:
    stack, state = every_store_and_vectors, tmp_path / "state.json"
    vectors = {"PARLANT_SUPABASE_VECTOR_STORE": "supabase"}
    created = run_phase("sdk-create", stack, tmp_path / "home-1", state, **vectors)["sdk-create"]
    assert "term" in created["ids"]
    data = run_phase("sdk-read", stack, tmp_path / "home-2", state, **vectors)
    same_entities(data["sdk-read"], created)
    data = run_phase("module-read", stack, tmp_path / "home-3", state, **vectors)
    same_entities(data["module-read"], created)
    for phase in ("sdk-create", "sdk-read", "module-read"):
        files = {Path(name).name for name in data[f"{phase}-files"]}
        assert files <= LOCAL_FILES, f"{phase} wrote {sorted(files - LOCAL_FILES)} locally"
    # The term and its embedding are rows of the glossary's vector table (written through the
    # vector write function, found through the search function: no file, no re-embedding).
    from parlant_supabase_sync.vector_ddl import vector_prefix, vector_table_name

    glossary = vector_table_name(vector_prefix("glossary"), "glossary")
    assert stack.query(f'SELECT count(*) FROM public."{glossary}"') == [(1,)]
    assert stack.requests.count(path_contains="/rpc/parlant_vector_write") > 0


@pytest.mark.anyio
async def test_guideline_tags_are_lost_on_parlant_s_own_store_too(tmp_path: Path) -> None:
    """The Parlant behaviour `untagged` allows for, on Parlant's JSON-file database alone."""
    from parlant.adapters.db.json_file import JSONFileDocumentDatabase
    from parlant.core.common import IdGenerator
    from parlant.core.guidelines import GuidelineDocumentStore
    from parlant.core.loggers import StdoutLogger
    from parlant.core.tracer import LocalTracer

    logger = StdoutLogger(LocalTracer())
    path = tmp_path / "guidelines.json"
    async with (
        JSONFileDocumentDatabase(logger, path) as database,
        GuidelineDocumentStore(IdGenerator(), database) as store,
    ):
        guideline = await store.create_guideline(condition="c", action="a")
        await store.upsert_tag(guideline.id, TagId("t"))
        assert (await store.read_guideline(guideline.id)).tags == ["t"]
    async with (
        JSONFileDocumentDatabase(logger, path) as database,
        GuidelineDocumentStore(IdGenerator(), database) as store,
    ):
        tags = (await store.read_guideline(guideline.id)).tags
    if tags:
        pytest.fail("Parlant now keeps guideline tags across restarts: drop `untagged`")
