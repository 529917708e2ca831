"""The generated SQL asks PostgREST to reload its schema cache: on a plain PostgREST (no
Supabase DDL event trigger) new tables are served only after `NOTIFY pgrst`, which every
generated script ends with."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from core_helpers import Doc, identity, unique_prefix

from parlant_supabase_sync.core import SyncDocumentDatabase
from parlant_supabase_sync.ddl import generate_schema, generated_files
from parlant_supabase_sync.errors import SchemaMissing
from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.settings import SupabaseSettings
from parlant_supabase_sync.sqltext import RELOAD_SCHEMA_CACHE


@pytest.fixture(scope="module")
def plain_postgrest() -> Iterator[LocalSupabase]:
    with LocalSupabase(ddl_watch=False) as stack:
        yield stack


def test_every_generated_file_ends_by_asking_for_a_reload() -> None:
    for name, text in generated_files().items():
        assert text.rstrip().endswith(RELOAD_SCHEMA_CACHE), name


def test_new_tables_are_served_only_after_the_scripts_notify(
    plain_postgrest: LocalSupabase,
) -> None:
    prefix = unique_prefix()
    script = generate_schema({prefix: ("docs",)}, include_functions=True)
    settings = SupabaseSettings(url=plain_postgrest.url, key=plain_postgrest.secret_key)
    # Without the final NOTIFY the gateway still serves its old schema, as PostgREST does.
    plain_postgrest.execute_sql(script.replace(RELOAD_SCHEMA_CACHE, ""))
    with SyncDocumentDatabase(settings, table_prefix=prefix) as db, pytest.raises(SchemaMissing):
        db.get_or_create_collection("docs", Doc, identity)
    plain_postgrest.execute_sql(script)  # idempotent; its NOTIFY reloads the cache
    with SyncDocumentDatabase(settings, table_prefix=prefix) as db:
        docs = db.get_or_create_collection("docs", Doc, identity)
        docs.insert_one({"id": "a", "version": "1", "creation_utc": "2025"})
        assert docs.count({}) == 1
