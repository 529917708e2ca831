"""Concurrent writes, hostile values in every operator, and use without an event loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from core_helpers import Doc, MakeDb, Pair, identity

from parlant_supabase_sync._types import Cursor, ObjectId
from parlant_supabase_sync.local import LocalSupabase

HOSTILE = [
    'a,b', "(x)", "a.b:c", '"quoted"', "back\\slash", "star*", "per%cent", "plus+sign",
    "with space", " lead", "trail ", "ünï☃日本", "", "null", "true", "1", "in.(x)",
    "eq.x", ")", ",", "\\", '"', "a\\\"b", "{x,y}", "not.is.null",
]


def _doc(i: int, value: Any) -> dict[str, Any]:
    return {"id": f"d{i:03d}", "version": "1", "creation_utc": f"2024-{i:03d}", "v": value, "k": value}


def test_concurrent_disjoint_updates_lose_nothing(make_db: MakeDb) -> None:
    collection = make_db(max_workers=20).get_or_create_collection("docs", Doc, identity)
    collection.insert_one({"id": "one", "version": "1", "creation_utc": "2024"})

    def update(i: int) -> None:
        result = collection.update_one({"id": {"$eq": "one"}}, {f"key{i}": i})
        assert result.matched_count == 1

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(update, range(20)))
    stored = collection.find_one({"id": {"$eq": "one"}})
    assert stored is not None
    assert all(stored[f"key{i}"] == i for i in range(20))


def test_concurrent_deletes_remove_each_document_once(make_db: MakeDb) -> None:
    collection = make_db().get_or_create_collection("docs", Doc, identity)
    for i in range(10):
        collection.insert_one({"id": f"e{i}", "version": "1", "creation_utc": f"{i}", "g": 1})
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: collection.delete_one({"g": {"$eq": 1}}), range(14)))
    deleted = [r.deleted_document["id"] for r in results if r.deleted_count]
    assert sorted(deleted) == [f"e{i}" for i in range(10)]
    assert collection.find({}).items == []


def test_hostile_values_in_every_operator_match_transient(pair: Pair) -> None:
    pair.insert(*[_doc(i, value) for i, value in enumerate(HOSTILE)])
    for value in HOSTILE:
        for field in ("id", "v"):
            operand = value if field == "v" else f"d{HOSTILE.index(value):03d}"
            for op in ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte"):
                if field == "v" and op in ("$gt", "$gte", "$lt", "$lte"):
                    continue  # jsonb strings order by the database collation (documented)
                pair.same("find", {field: {op: operand}})
        pair.same("find", {"v": {"$in": [value, "x"]}})
        pair.same("find", {"v": {"$in": [value]}})
        pair.same("find", {"v": {"$nin": [value, "zzz"]}})
        pair.same("find", {"$or": [{"v": {"$eq": value}}, {"k": {"$eq": "never"}}]})
        pair.same("find", {"$and": [{"v": {"$ne": value}}, {"v": {"$ne": "a,b"}}]})
        pair.same("find", {"id": {"$in": ["d000", value]}})
        pair.same("find", {}, limit=3, cursor=Cursor(value, ObjectId(value)))
        pair.same("find_one", {"v": {"$eq": value}})
    strings = {d["id"] for d in pair.core.find({}).items}
    for value in HOSTILE:
        for op in ("$gt", "$gte", "$lt", "$lte"):
            # Order of jsonb strings is the collation's; the match set must still be strings
            # only, and inclusive bounds must include the value itself.
            found = {d["id"]: d["v"] for d in pair.core.find({"v": {op: value}}).items}
            assert set(found) <= strings
            if op in ("$gte", "$lte"):
                assert value in found.values()
    all_values = pair.same("find", {"v": {"$in": HOSTILE}})
    assert len(all_values.items) == len(HOSTILE)
    assert len(pair.same("find", {"v": {"$nin": HOSTILE}}).items) == 0
    for i, value in enumerate(HOSTILE):
        pair.same("update_one", {"v": {"$eq": value}}, {"k": value + "!"})
        pair.same("delete_one", {"k": {"$eq": value + "!"}})
    assert pair.same("find", {}).items == []


def test_core_runs_in_a_plain_script_without_an_event_loop(stand_in: LocalSupabase, make_db: MakeDb) -> None:
    prefix = make_db(("docs",)).table_prefix
    script = textwrap.dedent(
        f"""
        import json
        from typing import TypedDict
        from parlant_supabase_sync import SyncDocumentDatabase

        class Doc(TypedDict, total=False):
            id: str
            version: str
            creation_utc: str

        with SyncDocumentDatabase(table_prefix={prefix!r}) as db:
            docs = db.get_or_create_collection("docs", Doc, lambda d: d)
            docs.insert_one({{"id": "s1", "version": "1", "creation_utc": "2024", "offset": 10}})
            found = docs.find({{"offset": {{"$gte": 9}}}})
            print(json.dumps([d["id"] for d in found.items]))
        """
    )
    env = {**os.environ, "SUPABASE_URL": stand_in.url, "SUPABASE_KEY": stand_in.service_role_key}
    completed = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == ["s1"]
    assert stand_in.service_role_key not in completed.stdout + completed.stderr


@pytest.mark.parametrize("key_name", ["service_role_key", "secret_key"])
def test_both_key_kinds_work(stand_in: LocalSupabase, make_db: MakeDb, key_name: str) -> None:
    db = make_db(key=getattr(stand_in, key_name))
    collection = db.get_or_create_collection("docs", Doc, identity)
    collection.insert_one({"id": "k", "version": "1", "creation_utc": "2024"})
    assert collection.count({}) == 1
    assert getattr(stand_in, key_name) not in repr(db)
