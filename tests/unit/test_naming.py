"""Table/index naming: the seed's exact names, PostgreSQL's 63-byte cut, prefix validation."""

from __future__ import annotations

import pytest

from parlant_supabase_sync.errors import ConfigurationError
from parlant_supabase_sync.naming import (
    DEFAULT_STORES,
    MAX_IDENTIFIER_BYTES,
    TableNames,
    all_table_names,
    failed_table_name,
    index_name,
    prefix_for_table,
    seed_index_name,
    table_name,
    table_names,
    tables_for,
    truncate_identifier,
    validate_prefix,
)

# Every table the seed SQL created, as PostgreSQL stored it.
SEED_TABLES = {
    "sessions": [
        "parlant_sessions_",
        "parlant_sessions__failed_migrations",
        "parlant_sessions_events",
        "parlant_sessions_events_failed_migrations",
        "parlant_sessions_metadata",
    ],
    "customers": [
        "parlant_customers_",
        "parlant_customers__failed_migrations",
        "parlant_customers_customer_tag_associations",
        "parlant_customers_customer_tag_associations_failed_migrations",
        "parlant_customers_metadata",
    ],
    "context_variables": [
        "parlant_context_variables_",
        "parlant_context_variables__failed_migrations",
        "parlant_context_variables_variable_tag_associations",
        "parlant_context_variables_variable_tag_associations_failed_migr",
        "parlant_context_variables_values",
        "parlant_context_variables_values_failed_migrations",
        "parlant_context_variables_metadata",
    ],
}


def test_default_stores_have_the_documented_prefixes_and_collections() -> None:
    assert {
        key: (spec.prefix, spec.collections) for key, spec in DEFAULT_STORES.items()
    } == {
        "sessions": ("parlant_sessions_", ("sessions", "events", "metadata")),
        "customers": (
            "parlant_customers_",
            ("customers", "customer_tag_associations", "metadata"),
        ),
        "context_variables": (
            "parlant_context_variables_",
            ("variables", "variable_tag_associations", "values", "metadata"),
        ),
    }


@pytest.mark.parametrize("store", sorted(SEED_TABLES))
def test_default_store_tables_are_spelled_exactly_as_the_seed_created_them(
    store: str,
) -> None:
    spec = DEFAULT_STORES[store]
    assert sorted(all_table_names(spec.prefix, spec.collections)) == sorted(
        SEED_TABLES[store]
    )


def test_collection_named_like_the_prefix_uses_the_prefix_itself() -> None:
    assert table_name("parlant_sessions_", "sessions") == "parlant_sessions_"
    assert (
        table_name("parlant_context_variables_", "variables")
        == "parlant_context_variables_"
    )
    assert table_name("parlant_sessions_", "events") == "parlant_sessions_events"
    assert table_name("app_", "sessions") == "app_sessions"


def test_failed_table_is_cut_from_the_full_name_like_postgresql_did() -> None:
    full = "parlant_context_variables_variable_tag_associations_failed_migrations"
    assert len(full) == 69
    assert failed_table_name(
        "parlant_context_variables_", "variable_tag_associations"
    ) == ("parlant_context_variables_variable_tag_associations_failed_migr")
    assert len(truncate_identifier(full).encode()) == MAX_IDENTIFIER_BYTES


def test_metadata_has_no_failed_table() -> None:
    assert table_names("parlant_sessions_", "metadata") == TableNames(
        "parlant_sessions_metadata", None
    )


def test_tables_for_returns_pairs_in_collection_order() -> None:
    assert tables_for("parlant_sessions_", ["sessions", "metadata"]) == [
        TableNames("parlant_sessions_", "parlant_sessions__failed_migrations"),
        TableNames("parlant_sessions_metadata", None),
    ]


def test_truncation_keeps_short_names_and_cuts_at_63_bytes() -> None:
    assert truncate_identifier("a" * 63) == "a" * 63
    assert truncate_identifier("a" * 64) == "a" * 63


def test_truncation_never_splits_a_multibyte_character() -> None:
    # 62 ASCII bytes then "é" (2 bytes): the character would straddle byte 63.
    name = "a" * 62 + "é" + "z"
    cut = truncate_identifier(name)
    assert cut == "a" * 62
    assert len(cut.encode()) == 62
    # A 3-byte character that ends exactly at byte 63 is kept.
    name = "a" * 60 + "€" + "zz"
    assert truncate_identifier(name) == "a" * 60 + "€"


def test_seed_index_names_are_cut_like_postgresql_cut_them() -> None:
    table = "parlant_context_variables_variable_tag_associations"
    assert seed_index_name(table, "creation_utc") == (
        "idx_parlant_context_variables_variable_tag_associations_creatio"
    )
    assert seed_index_name("parlant_sessions_", "creation_utc") == (
        "idx_parlant_sessions__creation_utc"
    )


def test_adapter_index_names_fit_and_stay_distinct_when_long() -> None:
    table = "parlant_context_variables_variable_tag_associations"
    names = {
        index_name(table, suffix) for suffix in ("by_tag_id", "by_variable_id", "by_x")
    }
    assert len(names) == 3
    assert all(len(name.encode()) <= MAX_IDENTIFIER_BYTES for name in names)
    assert index_name("parlant_sessions_", "by_creation_utc_id") == (
        "idx_parlant_sessions__by_creation_utc_id"
    )


@pytest.mark.parametrize("prefix", ["parlant_sessions_", "_x", "App1_", "a" * 30])
def test_validate_prefix_accepts_identifiers(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize(
    "prefix", ["", "1abc", "with-dash", "with space", 'q"uote', "é_"]
)
def test_validate_prefix_refuses_non_identifiers(prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="letters, digits and underscores"):
        validate_prefix(prefix)


def test_validate_prefix_refuses_names_that_collide_after_the_cut() -> None:
    # 40 + len("variable_tag_associations") = 65 bytes: main and failed both cut to 63.
    with pytest.raises(ConfigurationError, match="same name") as info:
        validate_prefix("p" * 40)
    assert "shorter prefix" in str(info.value)
    # The same prefix is fine for collections with short names.
    assert validate_prefix("p" * 40, ["sessions", "events", "metadata"]) == "p" * 40


def test_validate_prefix_refuses_overlong_prefix() -> None:
    with pytest.raises(ConfigurationError, match="at most"):
        validate_prefix("p" * 80, ["x"])


def test_prefix_for_table_finds_the_default_store() -> None:
    assert prefix_for_table("parlant_sessions_events") == "parlant_sessions_"
    assert (
        prefix_for_table(
            "parlant_context_variables_variable_tag_associations_failed_migr"
        )
        == "parlant_context_variables_"
    )
    assert prefix_for_table("something_else") is None


def test_collection_names_must_be_non_empty() -> None:
    with pytest.raises(ConfigurationError):
        table_name("p_", "")
