"""The indexes of every generated main table, and which Parlant access pattern each one serves.

`ddl.py` names them and writes the `CREATE INDEX` statements; this module only says what to index.
tests/core/test_plans.py checks with EXPLAIN that the stand-in's SQL for each access pattern uses
them.
"""

from __future__ import annotations

from parlant_supabase_sync.naming import METADATA_COLLECTION, truncate_identifier
from parlant_supabase_sync.sqltext import quote_ident, quote_literal

__all__ = ["main_indexes"]


def _data_key(key: str) -> str:
    return f"({quote_ident('data')} -> {quote_literal(key)})"


def _btree(*expressions: str) -> str:
    return "USING btree (" + ", ".join(expressions) + ")"


def main_indexes(
    prefix: str, collection: str, table: str
) -> list[tuple[str, str, bool]]:
    """(suffix, definition, seed_style) for a main table, seed's indexes first."""
    column = quote_ident
    primary = table == truncate_identifier(prefix)
    specs: list[tuple[str, str, bool]] = [
        ("creation_utc", _btree(column("creation_utc")), True)
    ]
    partial = []
    if primary:
        partial = ["session_id", "customer_id", "agent_id"]
    elif collection == "events":
        partial = ["session_id"]
    for name in partial:
        specs.append(
            (name, f"{_btree(column(name))} WHERE ({column(name)} IS NOT NULL)", True)
        )
    if collection != METADATA_COLLECTION:
        specs.append(("data_gin", f"USING gin ({column('data')})", True))

    # Adapter indexes: the (creation_utc, id) order every find uses, and the ones Parlant's
    # stores request through ensure_indexes. The jsonb expressions use `->` because the
    # filter encoder compares jsonb values (data->field=eq."x"), so only `->` indexes match.
    specs.append(
        ("by_creation_utc_id", _btree(column("creation_utc"), column("id")), False)
    )
    if collection == "sessions":
        for lead in ("agent_id", "customer_id"):
            specs.append(
                (
                    f"by_{lead}_creation_utc_id",
                    _btree(column(lead), column("creation_utc"), column("id")),
                    False,
                )
            )
    elif collection == "events":
        specs.append(
            (
                "by_session_id_offset",
                _btree(column("session_id"), _data_key("offset")),
                False,
            )
        )
        specs.append(
            (
                "by_session_id_deleted_offset",
                _btree(column("session_id"), _data_key("deleted"), _data_key("offset")),
                False,
            )
        )
    elif collection == "customer_tag_associations":
        specs.append(("by_customer_id", _btree(column("customer_id")), False))
        specs.append(("by_tag_id", _btree(_data_key("tag_id")), False))
    elif collection == "variable_tag_associations":
        specs.append(("by_variable_id", _btree(_data_key("variable_id")), False))
        specs.append(("by_tag_id", _btree(_data_key("tag_id")), False))
    elif collection == "values":
        # Not UNIQUE although (variable_id, key) is one value: Parlant's update_value upsert
        # can race between two replicas, and a unique index would turn that into an error
        # the store does not expect. Same for events (session_id, offset).
        specs.append(
            (
                "by_variable_id_key",
                _btree(_data_key("variable_id"), _data_key("key")),
                False,
            )
        )
    return specs
