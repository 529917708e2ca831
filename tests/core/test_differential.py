"""Hypothesis: random documents, filters and operations give Transient's results.

Generated filters stay where Transient answers (every document has every field; comparisons
only between values of one JSON type; no booleans against numbers) and jsonb strings use
lowercase letters, whose order is the same in every collation. Documents are inserted in
``(creation_utc, id)`` order: Transient's first match is the first inserted, ours the first in
that order (Parlant leaves the choice unspecified).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from core_helpers import Doc, MakeDb, Oracle, Pair, identity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parlant_supabase_sync._types import SortDirection
from parlant_supabase_sync.local import LocalSupabase

LETTERS = st.text(alphabet="abc", max_size=3)
IDS = st.text(alphabet="aAbB0", min_size=1, max_size=3)
NUMBERS = st.one_of(st.integers(-5, 5), st.sampled_from([-1.5, 0.25, 2.0, 3.75]))
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "n": NUMBERS,
    "s": LETTERS,
    "flag": st.booleans(),
    "session_id": LETTERS,
}


@st.composite
def documents(draw: st.DrawFn) -> list[dict[str, Any]]:
    ids = draw(st.lists(IDS, min_size=0, max_size=8, unique=True))
    return [
        {
            "id": doc_id,
            "version": "1",
            "creation_utc": draw(st.sampled_from(["2024-01", "2024-02", "2024-02.5"])),
            **{field: draw(strategy) for field, strategy in FIELDS.items()},
        }
        for doc_id in ids
    ]


def _field_filter(field: str) -> st.SearchStrategy[dict[str, Any]]:
    value = FIELDS[field] if field != "id" else IDS
    ops = ["$eq", "$ne", "$in", "$nin"]
    if field != "flag":
        ops += ["$gt", "$gte", "$lt", "$lte"]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        chosen = draw(st.lists(st.sampled_from(ops), min_size=1, max_size=2, unique=True))
        spec = {
            op: draw(st.lists(value, max_size=3)) if op in ("$in", "$nin") else draw(value)
            for op in chosen
        }
        return {field: spec}

    return build()


LEAF = st.sampled_from(["n", "s", "flag", "session_id", "id"]).flatmap(_field_filter)
WHERE = st.recursive(
    LEAF,
    lambda children: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(children, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(children, max_size=3)),
    ),
    max_leaves=6,
)


# Every read takes one of two paths: a GET with the filter in the URL, or (when the URL would pass
# max_url_bytes) parlant_find with the same filter tree in a POST body. Both run here.
PATHS = pytest.mark.parametrize(
    "path_settings", [{}, {"max_url_bytes": 0}], ids=["url", "post-body"]
)


@pytest.mark.slow
@PATHS
@settings(
    max_examples=int(os.environ.get("DIFFERENTIAL_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    docs=documents(),
    wheres=st.lists(WHERE, min_size=1, max_size=4),
    limit=st.one_of(st.none(), st.integers(0, 4)),
    direction=st.sampled_from([None, SortDirection.ASC, SortDirection.DESC]),
    params=st.fixed_dictionaries({"n": NUMBERS, "extra": LETTERS}),
)
def test_random_operations_match_transient(
    make_db: MakeDb,
    stand_in: LocalSupabase,
    path_settings: dict[str, Any],
    docs: list[dict[str, Any]],
    wheres: list[dict[str, Any]],
    limit: int | None,
    direction: SortDirection | None,
    params: dict[str, Any],
) -> None:
    db = make_db(**path_settings)
    pair = Pair(Oracle().collection("docs"), db.get_or_create_collection("docs", Doc, identity))
    # Transient's "first match" is insertion order, ours (creation_utc, id): insert in that
    # order so both mean the same document (find_one sort ties included).
    pair.insert(*sorted(docs, key=lambda d: (d["creation_utc"], d["id"])))
    for where in wheres:
        result = pair.same("find", where, limit=limit, sort_direction=direction)
        if result.next_cursor is not None:
            pair.same("find", where, limit=limit, cursor=result.next_cursor, sort_direction=direction)
        pair.same("find_one", where, sort=[("n", SortDirection.DESC), ("s", SortDirection.ASC)])
        assert pair.core.count(where) == len(Oracle.call(pair.oracle, "find", where).items)
    pair.same("update_one", wheres[0], params)
    pair.same("delete_one", wheres[-1])
    pair.same("find", {})
    if path_settings:
        assert stand_in.requests.count(path_contains="rpc/parlant_find") > 0
