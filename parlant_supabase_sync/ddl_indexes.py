"""The indexes of every generated main table, and which Parlant access pattern each one serves.

`ddl.py` names them and writes the `CREATE INDEX` statements; this module only says what to index.
tests/core/test_plans.py checks with EXPLAIN that the stand-in's SQL for each access pattern is
index-backed, and benchmarks/scale.py that its cost stays flat from 1,000 to 200,000 documents.

The filter encoder compares jsonb values (`data->field=eq."x"`) and mirrored text columns, so
only btree indexes on those columns and on `->` expressions can serve it. The older adapter's
SQL also created a GIN index on `data` (jsonb_ops); it serves only `@>`, `?`, `?|`, `?&`, `@?`
and `@@`, which no Parlant filter compiles to, and no plan used it (tests/core/test_plans.py),
while on 50,000 events it made loading 1.5× as slow, doubled the WAL per event and was 63% of
the table's size (benchmarks/scale.py --gin). The schema no longer creates it and the upgrade
drops it (`retired_indexes`).
"""

from __future__ import annotations

from parlant_supabase_sync.naming import (
    DEFAULT_STORES,
    METADATA_COLLECTION,
    MIRRORED_COLUMNS,
    store_for_prefix,
    truncate_identifier,
)
from parlant_supabase_sync.sqltext import quote_ident, quote_literal

__all__ = ["LOOKUP_KEYS", "main_indexes", "retired_indexes"]

#: Seed-named indexes of the older adapter's SQL that this schema drops (suffixes).
RETIRED_SUFFIXES = ("data_gin",)

#: The other Parlant stores' equality lookups, one single-key index each (collection → keys).
#: Association collections are read per entity on every read of it (`<entity>_id`) and by tag
#: when a listing filters by tags (`tag_id`); the rest are the stores' own `find` filters.
#: Whole-collection reads (agents, guidelines, tool services, ...) need only the order index.
LOOKUP_KEYS: dict[str, tuple[str, ...]] = {
    "agent_tags": ("agent_id", "tag_id"),
    "guideline_tag_associations": ("guideline_id", "tag_id"),
    "evaluation_tag_associations": ("evaluation_id", "tag_id"),
    "glossary_tags": ("term_id", "tag_id"),
    "canned_response_tag_associations": ("canned_response_id", "tag_id"),
    "capability_tags": ("capability_id", "tag_id"),
    "journey_tags": ("journey_id", "tag_id"),
    # list_nodes/list_edges of a journey; read/update/delete_node by node_id.
    "journey_nodes": ("journey_id", "node_id"),
    "journey_edges": ("journey_id",),
    # A journey's conditions, and the journeys of a condition (guideline) when matching.
    "journey_conditions": ("journey_id", "condition"),
    # list_relationships(source=…) / (target=…), with an optional kind, for every guideline
    # the engine resolves.
    "relationships": ("source", "target"),
    # upsert_tag / list_tags(name=…).
    "tags": ("name",),
}


def _data_key(key: str) -> str:
    return f"({quote_ident('data')} -> {quote_literal(key)})"


def _btree(*expressions: str) -> str:
    return "USING btree (" + ", ".join(expressions) + ")"


def _key(key: str) -> str:
    # A mirrored column where the document's key has one (agent_tags' agent_id), else `data->`.
    return quote_ident(key) if key in MIRRORED_COLUMNS else _data_key(key)


def _seed_indexes(prefix: str, collection: str, table: str) -> list[tuple[str, str, bool]]:
    """The older adapter's btree indexes, under its names (the upgrade keeps them); only for
    the stores it had (and custom prefixes whose store cannot be told, as before)."""
    column = quote_ident
    owner = store_for_prefix(prefix)
    if owner is not None and owner not in DEFAULT_STORES:
        return []
    specs = [("creation_utc", _btree(column("creation_utc")), True)]
    partial: list[str] = []
    if table == truncate_identifier(prefix):
        partial = ["session_id", "customer_id", "agent_id"]
    elif collection == "events":
        partial = ["session_id"]
    for name in partial:
        specs.append((name, f"{_btree(column(name))} WHERE ({column(name)} IS NOT NULL)", True))
    return specs


def main_indexes(prefix: str, collection: str, table: str) -> list[tuple[str, str, bool]]:
    """(suffix, definition, seed_style) for a main table, seed's indexes first."""
    column = quote_ident
    specs = _seed_indexes(prefix, collection, table)
    # Every find orders by (creation_utc, id); the rest are the indexes Parlant's stores request
    # through ensure_indexes, each serving the reads named next to it.
    specs.append(("by_creation_utc_id", _btree(column("creation_utc"), column("id")), False))
    if collection == "sessions":
        # list_sessions(agent_id=…) and list_sessions(customer_id=…), paged in (creation_utc, id).
        for lead in ("agent_id", "customer_id"):
            specs.append(
                (
                    f"by_{lead}_creation_utc_id",
                    _btree(column(lead), column("creation_utc"), column("id")),
                    False,
                )
            )
    elif collection == "events":
        # create_event's latest event (session_id, ordered by offset, descending).
        specs.append(
            (
                "by_session_id_offset",
                _btree(column("session_id"), _data_key("offset")),
                False,
            )
        )
        # list_events: session_id, deleted = false, offset >= min_offset (kinds are ORed
        # conjunctions that PostgreSQL factors back to these three).
        specs.append(
            (
                "by_session_id_deleted_offset",
                _btree(column("session_id"), _data_key("deleted"), _data_key("offset")),
                False,
            )
        )
    elif collection == "customer_tag_associations":
        # A customer's tags (read_customer), and the customers of tags (list_customers(tags)).
        specs.append(("by_customer_id", _btree(column("customer_id")), False))
        specs.append(("by_tag_id", _btree(_data_key("tag_id")), False))
    elif collection == "variable_tag_associations":
        # A variable's tags, and the variables of tags (list_variables(tags)).
        specs.append(("by_variable_id", _btree(_data_key("variable_id")), False))
        specs.append(("by_tag_id", _btree(_data_key("tag_id")), False))
    elif collection == "values":
        # read_value/update_value/delete_value. Not UNIQUE although (variable_id, key) is one
        # value: Parlant's update_value upsert can race between two replicas, and a unique
        # index would turn that into an error the store does not expect. Same for events
        # (session_id, offset).
        specs.append(
            (
                "by_variable_id_key",
                _btree(_data_key("variable_id"), _data_key("key")),
                False,
            )
        )
    for key in LOOKUP_KEYS.get(collection, ()):
        specs.append((f"by_{key}", _btree(_key(key)), False))
    return specs


def retired_indexes(collection: str) -> tuple[str, ...]:
    """Suffixes of the seed-named indexes the upgrade drops from a main table of `collection`."""
    return () if collection == METADATA_COLLECTION else RETIRED_SUFFIXES
