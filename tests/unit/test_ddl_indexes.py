"""The generated indexes (ddl_indexes.py): no GIN on data, and the upgrade drops the seed's."""

from __future__ import annotations

import re

from parlant_supabase_sync import ddl, ddl_upgrade
from parlant_supabase_sync.ddl_indexes import main_indexes, retired_indexes
from parlant_supabase_sync.naming import (
    DEFAULT_STORES,
    METADATA_COLLECTION,
    index_name,
    seed_index_name,
    table_name,
)

ALL_SQL = ddl.generate_schema(ddl.default_stores(), include_functions=True)
UPGRADE_SQL = ddl_upgrade.generate_upgrade()


def created(sql: str) -> dict[str, str]:
    return dict(re.findall(r'CREATE (?:UNIQUE )?INDEX IF NOT EXISTS "([^"]+)" ON (.*);', sql))


def dropped(sql: str) -> list[str]:
    return re.findall(r'DROP INDEX IF EXISTS "[^"]+"\."([^"]+)";', sql)


def seed_gin_names() -> list[str]:
    """The GIN indexes the older adapter's SQL created, as PostgreSQL cut their names."""
    return [
        seed_index_name(table_name(spec.prefix, collection), "data_gin")
        for spec in DEFAULT_STORES.values()
        for collection in spec.collections
        if collection != METADATA_COLLECTION
    ]


def test_no_table_gets_a_gin_index() -> None:
    assert not re.search(r"USING gin", ALL_SQL, re.IGNORECASE)
    documents = [
        definition
        for definition in created(ALL_SQL).values()
        if "_failed_migr" not in definition and "parlant_write_receipts" not in definition
    ]
    assert len(documents) > 30 and all("USING btree" in d for d in documents)


def test_the_upgrade_drops_the_seed_gin_indexes_and_nothing_else() -> None:
    assert sorted(dropped(UPGRADE_SQL)) == sorted(seed_gin_names())
    assert len(seed_gin_names()) == 7
    # Dropped before the indexes are created, and never one the upgrade creates.
    assert not set(dropped(UPGRADE_SQL)) & set(created(UPGRADE_SQL))


def test_the_fresh_schema_drops_nothing() -> None:
    assert dropped(ALL_SQL) == []


def test_a_retired_name_is_never_a_kept_index() -> None:
    # A 62-character table: PostgreSQL cuts every seed name of it to the same 63 bytes, which
    # the kept creation_utc index holds; the retired GIN then had the adapter's own name.
    prefix = "v" * 36 + "_"
    table = table_name(prefix, "variable_tag_associations")
    assert len(table) == 62
    upgrade = ddl_upgrade.generate_upgrade({prefix: ("variable_tag_associations",)})
    kept = set(created(upgrade))
    assert seed_index_name(table, "data_gin") in kept
    assert dropped(upgrade) == [index_name(table, "data_gin")]


def test_metadata_keeps_no_retired_index_and_no_suffix_is_both() -> None:
    assert retired_indexes(METADATA_COLLECTION) == ()
    for collection in ("sessions", "events", "customer_tag_associations", "values"):
        suffixes = {suffix for suffix, _, _ in main_indexes("parlant_sessions_", collection, "t")}
        assert not suffixes & set(retired_indexes(collection))
