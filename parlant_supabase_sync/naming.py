"""Table and index names: one table per collection, cut to 63 bytes exactly as PostgreSQL does.

Every table name is built by `table_name` / `failed_table_name` (through `table_names`), and
both validate their arguments: a collection name by `validate_collection_name` (ASCII letters,
digits and underscores, at most 63 characters, not ending in `_failed_migrations`), a prefix by
the same characters (`validate_prefix_characters`). Names travel in the REST path
(`/rest/v1/<table>`), so anything else could reach another table or another API
(`"_/../parlant_customers_"`, `"x/../../../auth/v1/admin/users"`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from parlant_supabase_sync.errors import ConfigurationError

__all__ = [
    "ALL_STORES",
    "COLLECTION_NAME_PATTERN",
    "DEFAULT_STORES",
    "EMBEDDINGS_COLLECTION",
    "FAILED_SUFFIX",
    "MAX_COLLECTION_NAME_LENGTH",
    "MAX_IDENTIFIER_BYTES",
    "MAX_PREFIX_LENGTH",
    "METADATA_COLLECTION",
    "MIRRORED_COLUMNS",
    "PARLANT_STORES",
    "StoreLayout",
    "StoreSpec",
    "TableNames",
    "UnknownCollection",
    "UnknownStore",
    "all_table_names",
    "expand_store_names",
    "failed_table_name",
    "foreign_store_error",
    "index_name",
    "prefix_for_table",
    "resolve_store",
    "seed_index_name",
    "store_for_prefix",
    "store_layouts",
    "table_name",
    "table_names",
    "tables_for",
    "tables_of",
    "truncate_identifier",
    "validate_collection_name",
    "validate_prefix",
    "validate_prefix_characters",
    "validate_table_name",
]

# NAMEDATALEN - 1: PostgreSQL silently cuts longer identifiers (with a NOTICE), so a table created
# from a long name must be addressed through PostgREST by its cut name.
MAX_IDENTIFIER_BYTES = 63

# The document's top-level keys that every collection table mirrors into a text column of the
# same name (when the value is a string); the whole document is in `data`.
MIRRORED_COLUMNS: tuple[str, ...] = (
    "id",
    "version",
    "creation_utc",
    "session_id",
    "customer_id",
    "agent_id",
)
MAX_PREFIX_LENGTH = 48
FAILED_SUFFIX = "_failed_migrations"
METADATA_COLLECTION = "metadata"
EMBEDDINGS_COLLECTION = "embeddings"

# The one character rule for collection names and table prefixes: ASCII letters, digits and
# underscores. Every collection name Parlant 3.3 passes to a document database fits it
# (sessions, events, customer_tag_associations, metadata, embedder class names such as
# OpenAITextEmbedding3Large, ...); dots, slashes, percent signs, quotes, spaces, NUL and non-ASCII
# letters do not.
COLLECTION_NAME_PATTERN = r"[A-Za-z0-9_]+"
# A collection name alone may fill a PostgreSQL identifier; with its prefix the main table name
# must fit too (see `table_name`).
MAX_COLLECTION_NAME_LENGTH = MAX_IDENTIFIER_BYTES

_COLLECTION_RE = re.compile(COLLECTION_NAME_PATTERN)
# Prefixes also start with a letter or underscore, so a table name never starts with a digit.
_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PREFIX_ADVICE = (
    "use ASCII letters, digits and underscores, starting with a letter or underscore "
    "(e.g. 'parlant_sessions_')"
)


def truncate_identifier(name: str) -> str:
    """Cut `name` to 63 UTF-8 bytes at a character boundary, as PostgreSQL's parser does."""
    encoded = name.encode("utf-8")
    if len(encoded) <= MAX_IDENTIFIER_BYTES:
        return name
    return encoded[:MAX_IDENTIFIER_BYTES].decode("utf-8", errors="ignore")


@dataclass(frozen=True)
class TableNames:
    """The tables behind one collection; `failed` is None for `metadata`."""

    main: str
    failed: str | None


@dataclass(frozen=True)
class StoreSpec:
    """A Parlant store's default table prefix, the collections it opens (its main collection
    first) and the name of Parlant's class for it."""

    prefix: str
    collections: tuple[str, ...]
    parlant_class: str = ""


def _spec(key: str, parlant_class: str, *collections: str, metadata: bool = True) -> StoreSpec:
    tail = (METADATA_COLLECTION,) if metadata else ()
    return StoreSpec(f"parlant_{key}_", (*collections, *tail), parlant_class)


# Every DocumentDatabase-backed store of Parlant 3.3 (tests/unit/test_parlant_stores.py derives
# this from Parlant's own code): the three conversation stores first, then the stores
# parlant-server keeps in PARLANT_HOME's JSON files, then the document side of the four vector
# stores (their embeddings live in a VectorDatabase, not here) and the embedding cache.
PARLANT_STORES: Mapping[str, StoreSpec] = MappingProxyType(
    {
        "sessions": _spec("sessions", "SessionDocumentStore", "sessions", "events"),
        "customers": _spec(
            "customers", "CustomerDocumentStore", "customers", "customer_tag_associations"
        ),
        "context_variables": _spec(
            "context_variables",
            "ContextVariableDocumentStore",
            "variables",
            "variable_tag_associations",
            "values",
        ),
        "agents": _spec("agents", "AgentDocumentStore", "agents", "agent_tags"),
        "tags": _spec("tags", "TagDocumentStore", "tags"),
        "guidelines": _spec(
            "guidelines", "GuidelineDocumentStore", "guidelines", "guideline_tag_associations"
        ),
        "guideline_tool_associations": _spec(
            "guideline_tool_associations", "GuidelineToolAssociationDocumentStore", "associations"
        ),
        "relationships": _spec("relationships", "RelationshipDocumentStore", "relationships"),
        "evaluations": _spec(
            "evaluations", "EvaluationDocumentStore", "evaluations", "evaluation_tag_associations"
        ),
        "services": _spec("services", "ServiceDocumentRegistry", "tool_services"),
        "glossary": _spec("glossary", "GlossaryVectorStore", "glossary_tags"),
        "canned_responses": _spec(
            "canned_responses",
            "CannedResponseVectorStore",
            "canned_responses",
            "canned_response_tag_associations",
        ),
        "journeys": _spec(
            "journeys",
            "JourneyVectorStore",
            "journeys",
            "journey_nodes",
            "journey_edges",
            "journey_tags",
            "journey_conditions",
        ),
        "capabilities": _spec(
            "capabilities", "CapabilityVectorStore", "capabilities", "capability_tags"
        ),
        # Parlant's BasicEmbeddingCache names a collection after each embedder class; the
        # adapter's cache (wiring.SupabaseEmbeddingCache) keeps every embedder's vectors in one
        # collection, keyed by the embedder's name too, so its tables are known in advance.
        "cache_embeddings": _spec(
            "cache_embeddings", "BasicEmbeddingCache", EMBEDDINGS_COLLECTION, metadata=False
        ),
    }
)

# The stores `sql`, `check` and `ls` work on when given none, and that the first release
# supported: Parlant's conversation stores. `ALL_STORES` (a store name) means every store.
DEFAULT_STORES: Mapping[str, StoreSpec] = MappingProxyType(
    {key: PARLANT_STORES[key] for key in ("sessions", "customers", "context_variables")}
)
ALL_STORES = "all"


def store_for_prefix(prefix: str) -> str | None:
    """The Parlant store (key of `PARLANT_STORES`) a table prefix is for, by its name: a
    store's default prefix, or one ending in a store's main collection (`acme_sessions_`; the
    longest such collection wins, so `acme_glossary_tags_` is the glossary's, not the tags');
    else None."""
    best: tuple[int, str] | None = None
    for key, spec in PARLANT_STORES.items():
        if prefix == spec.prefix:
            return key
        main = spec.collections[0]
        if prefix.rstrip("_").endswith(main) and (best is None or len(main) > best[0]):
            best = (len(main), key)
    return best[1] if best else None


def foreign_store_error(prefix: str, parlant_class: str) -> ConfigurationError | None:
    """The error for Parlant's store class `parlant_class` opened on another store's prefix.

    Stores share nothing but their `metadata` table's name rule, so a store on another store's
    prefix reads that store's version (Parlant then raises `ServerOutdated` or
    `MigrationRequired`). None when the prefix fits the store or its store cannot be told.
    """
    owner = store_for_prefix(prefix)
    wanted = next(
        (key for key, spec in PARLANT_STORES.items() if spec.parlant_class == parlant_class),
        None,
    )
    if owner is None or wanted is None or owner == wanted:
        return None
    return ConfigurationError(
        f"{parlant_class} was given the database with table_prefix {prefix!r}, whose tables "
        f"(its metadata too) belong to Parlant's {PARLANT_STORES[owner].parlant_class}: give "
        f"it a SupabaseDocumentDatabase with table_prefix={PARLANT_STORES[wanted].prefix!r} "
        "(each store needs its own prefix; supabase_stores() opens every store)"
    )


def _shown(name: object) -> str:
    """A name for an error message: repr, shortened, so the message stays one short line."""
    text = repr(name)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_collection_name(collection: str) -> str:
    """Check a collection name and return it unchanged; the one rule for collection names.

    ASCII letters, digits and underscores (`COLLECTION_NAME_PATTERN`), 1 to 63 characters, and
    not ending in `_failed_migrations` (that would be another collection's failed-migrations
    table). Raises `ConfigurationError` (a `ValueError`) with a one-line message.
    """
    if not isinstance(collection, str) or not _COLLECTION_RE.fullmatch(collection):
        raise ConfigurationError(
            f"invalid collection name {_shown(collection)}: use 1 to "
            f"{MAX_COLLECTION_NAME_LENGTH} ASCII letters, digits and underscores "
            "(e.g. 'events')"
        )
    if len(collection) > MAX_COLLECTION_NAME_LENGTH:
        raise ConfigurationError(
            f"invalid collection name {_shown(collection)}: it is {len(collection)} characters "
            f"long; use at most {MAX_COLLECTION_NAME_LENGTH}"
        )
    if collection.endswith(FAILED_SUFFIX):
        raise ConfigurationError(
            f"invalid collection name {_shown(collection)}: names ending in {FAILED_SUFFIX!r} "
            "are reserved for failed-migrations tables"
        )
    return collection


def validate_prefix_characters(prefix: str) -> str:
    """Check a table prefix's characters (the collection-name characters, not starting with a
    digit) and return it unchanged; `validate_prefix` also checks its length and collisions."""
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise ConfigurationError(f"invalid table prefix {_shown(prefix)}: {_PREFIX_ADVICE}")
    return prefix


def validate_table_name(table: str) -> str:
    """Check a complete table name (e.g. one read back from a report) and return it unchanged.

    What `table_name` and `failed_table_name` produce: the prefix characters, at most 63 bytes.
    For code that receives table names rather than building them, before they reach a URL.
    """
    if (
        not isinstance(table, str)
        or not _PREFIX_RE.fullmatch(table)
        or len(table) > MAX_IDENTIFIER_BYTES
    ):
        raise ConfigurationError(
            f"invalid table name {_shown(table)}: use 1 to {MAX_IDENTIFIER_BYTES} ASCII "
            "letters, digits and underscores, starting with a letter or underscore"
        )
    return table


def _full_table_name(prefix: str, collection: str) -> str:
    validate_prefix_characters(prefix)
    validate_collection_name(collection)
    if prefix.rstrip("_").endswith(collection):
        full = prefix
    else:
        full = prefix + collection
    if len(full.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        # PostgreSQL would cut it: the main and failed-migrations tables (and any collection
        # sharing the first 63 bytes) would get the same name.
        raise ConfigurationError(
            f"table prefix {_shown(prefix)} and collection {_shown(collection)} make a "
            f"{len(full)}-byte table name, which PostgreSQL cuts to {MAX_IDENTIFIER_BYTES} bytes "
            "so that different tables would get the same name; choose a shorter prefix or "
            "collection name"
        )
    return full


def table_name(prefix: str, collection: str) -> str:
    """The main table of `collection` under `prefix` (at most 63 bytes, never cut).

    Validates both (`validate_prefix_characters`, `validate_collection_name`) and refuses a
    combination longer than PostgreSQL's 63-byte identifiers.
    """
    return _full_table_name(prefix, collection)


def failed_table_name(prefix: str, collection: str) -> str | None:
    """The failed-migrations table of `collection`, or None for `metadata`."""
    full = _full_table_name(prefix, collection)
    if collection == METADATA_COLLECTION:
        return None
    # Built from the full main name, as the seed SQL did; PostgreSQL then cut the whole name.
    return truncate_identifier(full + FAILED_SUFFIX)


def table_names(prefix: str, collection: str) -> TableNames:
    """Both tables of one collection."""
    return TableNames(table_name(prefix, collection), failed_table_name(prefix, collection))


def tables_for(prefix: str, collections: Iterable[str]) -> list[TableNames]:
    """`TableNames` for each collection, in order; refuses names that collide after cutting."""
    result = [table_names(prefix, collection) for collection in collections]
    _refuse_collisions(prefix, list(collections), result)
    return result


def all_table_names(prefix: str, collections: Iterable[str]) -> list[str]:
    """Every table (main, then failed) for the collections, in order."""
    names: list[str] = []
    for pair in tables_for(prefix, collections):
        names.append(pair.main)
        if pair.failed is not None:
            names.append(pair.failed)
    return names


def _refuse_collisions(prefix: str, collections: list[str], pairs: list[TableNames]) -> None:
    owner: dict[str, str] = {}
    for collection, pair in zip(collections, pairs):
        for kind, name in (
            ("table", pair.main),
            ("failed-migrations table", pair.failed),
        ):
            if name is None:
                continue
            label = f"the {kind} of collection {collection!r}"
            previous = owner.get(name)
            if previous is not None and previous != label:
                raise ConfigurationError(
                    f"table prefix {prefix!r} gives {previous} and {label} the same name "
                    f"{name!r} (PostgreSQL cuts identifiers to {MAX_IDENTIFIER_BYTES} bytes); "
                    "choose a shorter prefix"
                )
            owner[name] = label


def _default_collections() -> list[str]:
    seen: dict[str, None] = {}
    for spec in DEFAULT_STORES.values():
        seen.update(dict.fromkeys(spec.collections))
    return list(seen)


def validate_prefix(prefix: str, collections: Iterable[str] | None = None) -> str:
    """Check a table prefix and return it unchanged.

    Without `collections`, the prefix must work for every default store's collections.
    Raises `ConfigurationError` saying what to change.
    """
    validate_prefix_characters(prefix)
    if len(prefix) > MAX_PREFIX_LENGTH:
        raise ConfigurationError(
            f"table prefix {prefix!r} is {len(prefix)} characters long; use at most "
            f"{MAX_PREFIX_LENGTH}"
        )
    tables_for(prefix, _default_collections() if collections is None else list(collections))
    return prefix


def prefix_for_table(table: str) -> str | None:
    """The default prefix of the Parlant store whose tables include `table`, if any."""
    for spec in PARLANT_STORES.values():
        if table in all_table_names(spec.prefix, spec.collections):
            return spec.prefix
    return None


def seed_index_name(table: str, suffix: str) -> str:
    """An index name as the seed SQL spelled it: `idx_<table>_<suffix>`, cut by PostgreSQL."""
    return truncate_identifier(f"idx_{table}_{suffix}")


def index_name(table: str, suffix: str) -> str:
    """A name for an index the adapter adds; never collides with a cut seed name.

    Names that fit are `idx_<table>_<suffix>`; longer ones keep a readable head and end in a
    hash of the full name, because plain cutting would make them equal to their neighbours.
    """
    full = f"idx_{table}_{suffix}"
    if len(full.encode("utf-8")) <= MAX_IDENTIFIER_BYTES:
        return full
    digest = hashlib.sha256(full.encode("utf-8")).hexdigest()[:10]
    head = truncate_identifier(full)
    while len(f"{head}_{digest}".encode()) > MAX_IDENTIFIER_BYTES:
        head = head[:-1]
    return f"{head}_{digest}"


# --- store names (`Connection.store`, the `sql` command) ---------------------------------------


class UnknownStore(ConfigurationError):
    """A store name that is neither a known store, nor a default or custom table prefix."""


class UnknownCollection(ConfigurationError):
    """A collection name the store does not have."""


class StoreLayout(NamedTuple):
    """A store: its key (None for a custom prefix), table prefix and collections (empty for a
    custom prefix that does not tell its store)."""

    key: str | None
    prefix: str
    collections: tuple[str, ...]

    @property
    def label(self) -> str:
        """The store's key (`sessions`, …) or, for a custom prefix, the prefix."""
        return self.key or self.prefix

    @property
    def tables(self) -> list[str]:
        """Every table of the store (main and failed-migrations tables)."""
        return all_table_names(self.prefix, self.collections)

    def collection(self, name: str) -> str:
        """`name`, validated; `UnknownCollection` when the store's collections are known and
        `name` is not one of them."""
        validate_collection_name(name)
        if self.collections and name not in self.collections:
            raise UnknownCollection(
                f"unknown collection {name!r} in store {self.label!r} "
                f"(known: {', '.join(self.collections)})"
            )
        return name


def tables_of(stores: Iterable[StoreLayout]) -> list[str]:
    """Every table of `stores`, in order."""
    return [name for store in stores for name in store.tables]


def _other_stores() -> str:
    return ", ".join(key for key in PARLANT_STORES if key not in DEFAULT_STORES)


def _unknown_store(name: str, reason: str = "") -> UnknownStore:
    shown = repr(name if len(name) <= 60 else name[:57] + "...")
    # A bad prefix's reason is long already: then only the conversation stores are listed.
    others = "" if reason else f"; also {_other_stores()}; {ALL_STORES!r} for every store"
    return UnknownStore(
        f"unknown store {shown} (known: {', '.join(DEFAULT_STORES)}{others}; or a table prefix "
        f"ending in '_', e.g. acme_sessions_, or PREFIX=STORE){f': {reason}' if reason else ''}"
    )


def _checked_prefix(prefix: str, owner: str | None) -> str:
    # The three conversation stores' custom prefixes have always been checked against all
    # their collections together; another store's prefix against that store's own.
    if owner is None or owner in DEFAULT_STORES:
        return validate_prefix(prefix)
    return validate_prefix(prefix, PARLANT_STORES[owner].collections)


def resolve_store(name: str) -> StoreLayout:
    """The store a name means: a store key (any of `PARLANT_STORES`), a store's default prefix,
    `PREFIX=STORE` or a custom prefix (one ending in `_` or in a store's main collection); else
    `UnknownStore`. `all` means several stores: `store_layouts` expands it."""
    if name in PARLANT_STORES:
        return StoreLayout(name, PARLANT_STORES[name].prefix, PARLANT_STORES[name].collections)
    if "=" in name:
        # `myapp_=sessions`: a custom prefix for a known store whose name does not tell it.
        prefix, _, key = name.partition("=")
        if key not in PARLANT_STORES:
            raise UnknownStore(
                f"unknown store {key!r} in {name!r}: use PREFIX=STORE with STORE one of "
                f"{', '.join(PARLANT_STORES)}"
            )
        collections = PARLANT_STORES[key].collections
        validate_prefix(prefix, collections)
        return StoreLayout(None, prefix, collections)
    # A custom prefix names its store by its main collection (`acme_sessions_`, like the defaults).
    owner = store_for_prefix(name)
    if owner is not None and name == PARLANT_STORES[owner].prefix:
        return StoreLayout(owner, name, PARLANT_STORES[owner].collections)
    if owner is None and not name.endswith("_"):
        raise _unknown_store(name)  # a typo of a key, not a prefix (prefixes end in "_")
    try:
        _checked_prefix(name, owner)
    except ConfigurationError as exc:
        raise _unknown_store(name, str(exc)) from None
    return StoreLayout(None, name, PARLANT_STORES[owner].collections if owner else ())


def expand_store_names(names: Iterable[str]) -> list[str]:
    """`names` with `all` replaced by every Parlant store's key (each name once, in order)."""
    expanded: dict[str, None] = {}
    for name in names:
        expanded.update(dict.fromkeys(PARLANT_STORES if name == ALL_STORES else [name]))
    return list(expanded)


def store_layouts(names: Iterable[str]) -> list[StoreLayout]:
    """`resolve_store` of each name (`all`: every Parlant store); a `ConfigurationError` for a
    custom prefix whose store cannot be told (its collections are unknown)."""
    layouts = []
    for layout in map(resolve_store, expand_store_names(names)):
        if not layout.collections:
            raise ConfigurationError(
                f"cannot tell which Parlant store prefix {layout.prefix!r} is for: end it with "
                "the store's main collection (e.g. acme_sessions_, acme_customers_, "
                f"acme_variables_) or write {layout.prefix}=sessions (or =customers, "
                "=context_variables)"
            )
        layouts.append(layout)
    return layouts
