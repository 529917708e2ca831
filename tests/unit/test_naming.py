"""Table/index naming: the seed's exact names, PostgreSQL's 63-byte cut, prefix validation."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from parlant_supabase_sync.errors import ConfigurationError
from parlant_supabase_sync.naming import (
    DEFAULT_STORES,
    FAILED_SUFFIX,
    MAX_COLLECTION_NAME_LENGTH,
    MAX_IDENTIFIER_BYTES,
    StoreLayout,
    TableNames,
    UnknownCollection,
    UnknownStore,
    all_table_names,
    failed_table_name,
    foreign_store_error,
    index_name,
    prefix_for_table,
    resolve_store,
    seed_index_name,
    store_for_prefix,
    store_layouts,
    table_name,
    table_names,
    tables_for,
    tables_of,
    truncate_identifier,
    validate_collection_name,
    validate_prefix,
    validate_prefix_characters,
    validate_table_name,
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


# --- one rule for collection names (issue #11 item 3) ------------------------------------------

# Every collection name Parlant 3.3 passes to a DocumentDatabase or VectorDatabase, by store
# (parlant/core/**, the SDK and bin/prepare_migration.py).
PARLANT_COLLECTIONS = {
    "sessions": ["sessions", "events", "metadata"],
    "customers": ["customers", "customer_tag_associations", "metadata"],
    "context_variables": ["variables", "variable_tag_associations", "values", "metadata"],
    "agents": ["agents", "agent_tags", "metadata"],
    "tags": ["tags", "metadata"],
    "guidelines": ["guidelines", "guideline_tag_associations", "metadata"],
    "guideline_tool_associations": ["associations", "metadata"],
    "relationships": ["relationships", "metadata"],
    "journeys": [
        "journeys",
        "journey_nodes",
        "journey_edges",
        "journey_tags",
        "journey_conditions",
        "metadata",
    ],
    "glossary": ["glossary", "glossary_tags", "metadata"],
    "canned_responses": ["canned_responses", "canned_response_tag_associations", "metadata"],
    "capabilities": ["capabilities", "capability_tags", "metadata"],
    "evaluations": ["evaluations", "evaluation_tag_associations", "metadata"],
    "services": ["tool_services", "metadata"],
    # BasicEmbeddingCache: one collection per embedder class, named by the class (the server
    # wires it to a JSON file today, but the cache takes any DocumentDatabase).
    "embedding_cache": [
        "OpenAITextEmbedding3Large",
        "OpenAITextEmbedding3Small",
        "GeminiTextEmbedding_001",
        "VertexTextEmbedding004",
        "QwenTextEmbedding_V4",
        "Embedding_3",
        "JinaAIEmbedder",
        "LiteLLMEmbedder",
    ],
    # JSON-file/Chroma internals and old store names that prepare_migration.py still opens.
    "migration_and_vector_internals": [
        "failed_migrations",
        "glossary_unembedded",
        "journeys_unembedded",
        "canned_responses_unembedded",
        "capabilities_unembedded",
        "utterances",
        "utterances_unembedded",
        "utterance_tags",
        "utterance_tag_associations",
        "context_variable_values",
        "journey_tag_associations",
        "journey_condition_associations",
        "guideline_connections",
        "guideline_relationships",
        "canned_responses_tags",
        "capabilities_tags",
    ],
}


@pytest.mark.parametrize(
    "collection",
    sorted({name for names in PARLANT_COLLECTIONS.values() for name in names}),
)
def test_every_parlant_collection_name_is_accepted(collection: str) -> None:
    assert validate_collection_name(collection) == collection
    assert table_name("parlant_x_", collection).startswith("parlant_x_")


def _installed_parlant_collection_names() -> set[str]:
    spec = importlib.util.find_spec("parlant")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("parlant is not installed (the parlant extra)")
    root = Path(next(iter(spec.submodule_search_locations)))
    call = re.compile(
        r"\b(?:get_or_create_collection|get_collection|create_collection|delete_collection)"
        r"\(\s*(?:name\s*=\s*)?([\"'])([^\"'{}]*)\1"
    )
    names: set[str] = set()
    for path in root.glob("core/**/*.py"):
        names.update(match.group(2) for match in call.finditer(path.read_text("utf-8")))
    return names


def test_the_installed_parlant_uses_only_names_the_rule_accepts() -> None:
    names = _installed_parlant_collection_names()
    # The scan found the stores' collections (it would find nothing if Parlant changed style).
    assert {"sessions", "events", "customers", "metadata", "variables", "values"} <= names
    refused = []
    for name in sorted(names):
        try:
            validate_collection_name(name)
        except ConfigurationError as exc:
            refused.append(str(exc))
    assert refused == []


HOSTILE_COLLECTIONS = [
    "",
    ".",
    "..",
    "_/../parlant_customers_",
    "x/../../../auth/v1/admin/users",
    "../rpc/parlant_merge_document",
    "events/..",
    "a/b",
    "a\\b",
    "a%2Fb",
    "%2e%2e",
    "a?select=*",
    "a#frag",
    "a&b=c",
    "a\x00b",
    "\x00",
    'a"b',
    "a'b",
    "a`b",
    "a b",
    " events",
    "events ",
    "events\n",
    "events\t",
    "a-b",
    "a.b",
    "a;drop table x",
    "a,b",
    "a(b)",
    "é",
    "événements",
    "ａｂｃ",  # fullwidth letters
    "١٢٣",  # Arabic-Indic digits (match \d but not [0-9])
    "events\u200b",  # zero-width space
    "ﬁ",  # ligature that NFKC-normalizes to "fi"
    "a" * (MAX_COLLECTION_NAME_LENGTH + 1),
    "x" * 10_000,
    "events" + FAILED_SUFFIX,
    "x_failed_migrations",
]


@pytest.mark.parametrize("collection", HOSTILE_COLLECTIONS)
def test_hostile_collection_names_are_refused_in_one_line(collection: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        validate_collection_name(collection)
    message = str(info.value)
    assert message.startswith("invalid collection name ")
    assert "\n" not in message and "\x00" not in message
    assert len(message) < 250
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("collection", HOSTILE_COLLECTIONS)
@pytest.mark.parametrize(
    "build", [table_name, failed_table_name, table_names], ids=lambda f: f.__name__
)
def test_every_table_name_function_refuses_hostile_collections(
    collection: str, build: object
) -> None:
    assert callable(build)
    with pytest.raises(ConfigurationError, match="invalid collection name"):
        build("parlant_sessions_", collection)


@pytest.mark.parametrize("collection", HOSTILE_COLLECTIONS)
def test_tables_for_and_validate_prefix_refuse_hostile_collections(collection: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid collection name"):
        tables_for("parlant_sessions_", ["events", collection])
    with pytest.raises(ConfigurationError, match="invalid collection name"):
        validate_prefix("parlant_sessions_", [collection])


@pytest.mark.parametrize("value", [None, 5, b"events", ["events"]])
def test_non_string_collection_names_are_refused(value: object) -> None:
    with pytest.raises(ConfigurationError, match="invalid collection name"):
        validate_collection_name(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "collection",
    ["a", "A", "_", "0", "9lives", "x_1", "CamelCase", "a" * MAX_COLLECTION_NAME_LENGTH],
)
def test_plain_ascii_names_are_accepted(collection: str) -> None:
    assert validate_collection_name(collection) == collection


HOSTILE_PREFIXES = [
    "",
    "_/../",
    "parlant_sessions_/../parlant_customers_",
    "x/../../../auth/v1/admin/users/",
    "p%2F",
    "p\x00",
    'p"',
    "p'",
    "p ",
    "p-",
    "p.",
    "1p_",
    "é_",
    "ｐ_",
    "p_\n",
]


@pytest.mark.parametrize("prefix", HOSTILE_PREFIXES)
def test_hostile_prefixes_are_refused_by_every_table_name_function(prefix: str) -> None:
    for build in (table_name, failed_table_name, table_names):
        with pytest.raises(ConfigurationError, match="invalid table prefix") as info:
            build(prefix, "events")
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigurationError, match="invalid table prefix"):
        validate_prefix_characters(prefix)
    with pytest.raises(ConfigurationError, match="invalid table prefix"):
        validate_prefix(prefix, ["events"])


def test_a_table_name_postgresql_would_cut_is_refused() -> None:
    # 38 + len("variable_tag_associations") = 63 bytes: fits (its failed table is cut, as the
    # seed's was); one more byte and the main table would be cut too.
    assert len(table_name("p" * 38, "variable_tag_associations")) == MAX_IDENTIFIER_BYTES
    with pytest.raises(ConfigurationError, match="shorter prefix or collection name") as info:
        table_names("p" * 39, "variable_tag_associations")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigurationError, match="cuts to 63 bytes"):
        table_name("p_", "m" * 62)
    # Two long collections that would share their first 63 bytes cannot both get tables.
    for collection in ("x" * 62 + "a", "x" * 62 + "b"):
        with pytest.raises(ConfigurationError):
            table_name("p_", collection)


def test_the_collection_named_like_its_prefix_still_maps_to_the_prefix() -> None:
    assert table_name("parlant_customers_", "customers") == "parlant_customers_"
    assert failed_table_name("parlant_customers_", "customers") == (
        "parlant_customers__failed_migrations"
    )


@pytest.mark.parametrize(
    "table",
    ["parlant_sessions_events", "parlant_context_variables_variable_tag_associations_failed_migr"],
)
def test_validate_table_name_accepts_what_the_builders_make(table: str) -> None:
    assert validate_table_name(table) == table


@pytest.mark.parametrize(
    "table",
    ["", "../auth/v1/admin/users", "t%2F", "t\x00", 't"', "1t", "t" * 64, "é", "a.b", None],
)
def test_validate_table_name_refuses_the_rest(table: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid table name"):
        validate_table_name(table)


def test_every_default_table_passes_validate_table_name() -> None:
    for spec in DEFAULT_STORES.values():
        for table in all_table_names(spec.prefix, spec.collections):
            assert validate_table_name(table) == table


@pytest.mark.parametrize(
    ("prefix", "store"),
    [
        ("parlant_sessions_", "sessions"),
        ("acme_sessions_", "sessions"),
        ("parlant_customers_", "customers"),
        ("parlant_context_variables_", "context_variables"),
        ("acme_variables", "context_variables"),
        ("pss_facade_", None),
    ],
)
def test_store_for_prefix_reads_the_main_collection_off_the_prefix(
    prefix: str, store: str | None
) -> None:
    assert store_for_prefix(prefix) == store


def test_a_store_on_another_stores_prefix_is_told_which_prefix_to_use() -> None:
    error = foreign_store_error("parlant_sessions_", "CustomerDocumentStore")
    assert isinstance(error, ConfigurationError)
    message = str(error)
    assert "'parlant_sessions_'" in message and "SessionDocumentStore" in message
    assert "table_prefix='parlant_customers_'" in message
    assert foreign_store_error("parlant_sessions_", "SessionDocumentStore") is None
    assert foreign_store_error("pss_facade_", "CustomerDocumentStore") is None
    assert foreign_store_error("parlant_sessions_", "SomeOtherStore") is None
    assert {spec.parlant_class for spec in DEFAULT_STORES.values()} == {
        "SessionDocumentStore",
        "CustomerDocumentStore",
        "ContextVariableDocumentStore",
    }


# --- store names ---------------------------------------------------------------------------------


def test_store_names_resolve_keys_prefixes_and_custom_prefixes() -> None:
    sessions = ("sessions", "events", "metadata")
    assert resolve_store("sessions") == StoreLayout("sessions", "parlant_sessions_", sessions)
    assert resolve_store("parlant_context_variables_").key == "context_variables"
    assert resolve_store("acme_sessions_") == StoreLayout(None, "acme_sessions_", sessions)
    assert resolve_store("shop=customers").collections[0] == "customers"
    assert resolve_store("acme_") == StoreLayout(None, "acme_", ())
    assert resolve_store("acme_").label == "acme_" and resolve_store("customers").label == "customers"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("sesions", "unknown store 'sesions' (known: sessions, customers, context_variables;"),
        ("acme_=nope", "unknown store 'nope' in 'acme_=nope': use PREFIX=STORE"),
        ("bad-prefix_", "unknown store 'bad-prefix_' ("),
        ("x" * 500, "unknown store 'xxxxx"),
    ],
)
def test_names_that_are_no_store_are_refused_in_one_line(name: str, message: str) -> None:
    with pytest.raises(UnknownStore) as refused:
        resolve_store(name)
    text = str(refused.value)
    assert text.startswith(message) and "\n" not in text and len(text) < 400
    assert isinstance(refused.value, ConfigurationError)


def test_a_store_layout_knows_its_collections_and_tables() -> None:
    customers = resolve_store("acme_customers_")
    assert customers.collection("customers") == "customers"
    with pytest.raises(UnknownCollection, match=r"in store 'acme_customers_' \(known: customers,"):
        customers.collection("customer")
    assert resolve_store("acme_").collection("orders") == "orders"  # any name: layout unknown
    with pytest.raises(ConfigurationError, match="invalid collection name"):
        resolve_store("acme_").collection("a/b")
    sessions = resolve_store("sessions")
    assert sessions.tables == all_table_names("parlant_sessions_", sessions.collections)
    both = store_layouts(["sessions", "customers"])
    assert tables_of(both) == sessions.tables + resolve_store("customers").tables


def test_store_layouts_refuse_a_prefix_whose_store_cannot_be_told() -> None:
    with pytest.raises(ConfigurationError, match="cannot tell which Parlant store prefix 'acme_'"):
        store_layouts(["sessions", "acme_"])
    assert [s.prefix for s in store_layouts(["acme_=sessions"])] == ["acme_"]
