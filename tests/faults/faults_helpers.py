"""Helpers of the fault tests (imported by basename: tests/ has no packages)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from parlant_supabase_sync.ddl import generate_schema
from parlant_supabase_sync.local import LocalSupabase
from parlant_supabase_sync.local.faultproxy import FaultProxy
from parlant_supabase_sync.naming import table_name

MakeProxy = Callable[..., FaultProxy]


@dataclass(frozen=True)
class FreshTable:
    prefix: str
    table: str
    stand_in: LocalSupabase

    def rows(self) -> dict[str, dict[str, Any]]:
        """Every row's document by id, read directly from PostgreSQL."""
        with psycopg.connect(self.stand_in.database_url, autocommit=True) as conn:
            query = sql.SQL("SELECT id, data FROM public.{} ORDER BY id").format(
                sql.Identifier(self.table)
            )
            return {row[0]: row[1] for row in conn.execute(query)}

    def count(self, doc_id: str) -> int:
        with psycopg.connect(self.stand_in.database_url, autocommit=True) as conn:
            query = sql.SQL("SELECT count(*) FROM public.{} WHERE id = %s").format(
                sql.Identifier(self.table)
            )
            row = conn.execute(query, (doc_id,)).fetchone()
            return int(row[0]) if row else 0


def unique_prefix() -> str:
    return f"f{uuid.uuid4().hex[:12]}_"


def create_table(stand_in: LocalSupabase, collection: str = "docs") -> FreshTable:
    prefix = unique_prefix()
    stand_in.execute_sql(generate_schema({prefix: (collection,)}))
    return FreshTable(prefix, table_name(prefix, collection), stand_in)
