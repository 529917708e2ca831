"""The SQL of the vector databases: one table per vector collection, a metadata table, and the
RPC functions the vector core calls (``parlant_vector_search``, ``parlant_vector_find``,
``parlant_vector_write``).

A vector table holds the document (``data``, with the same six mirrored text columns as a
document table, so filters compile through ``parlant_find_where``: one filter semantics), the
checksum of its ``content`` and its embedding: ``extensions.vector(N)`` up to 2,000
dimensions, ``extensions.halfvec(N)`` up to 4,000 (pgvector's HNSW limits), always with an
HNSW index on cosine distance. ``seq`` keeps insertion order (what ``find`` returns, like
Parlant's TransientVectorDatabase). Embeddings travel as text (``'[0.1,0.2]'``) and are cast
to the column's type inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .ddl_find import find_functions
from .ddl_functions import SERVICE_ROLE, WHERE_FUNCTION
from .ddl_grants import (
    BROWSER_ROLES,
    TABLE_PRIVILEGES,
    for_existing_roles,
    revoke_table_privileges,
)
from .errors import ConfigurationError
from .naming import MIRRORED_COLUMNS, table_name
from .sqltext import (
    RELOAD_SCHEMA_CACHE,
    dollar_quote,
    mirror,
    qualified,
    quote_ident,
    quote_literal,
)

__all__ = [
    "FIND_FUNCTION",
    "MAX_HALFVEC_DIMS",
    "MAX_VECTOR_DIMS",
    "SEARCH_FUNCTION",
    "VECTOR_COLLECTIONS",
    "VECTOR_FUNCTION_NAMES",
    "VECTOR_TABLE_COMMENT",
    "WRITE_FUNCTION",
    "column_type",
    "metadata_table_name",
    "parlant_vector_schema_sql",
    "parlant_vector_tables",
    "vector_prefix",
    "vector_schema_sql",
    "vector_table_name",
]

VECTOR_TABLE_COMMENT = "parlant-supabase-sync vector table"
VECTOR_METADATA_COMMENT = "parlant-supabase-sync vector metadata"
SEARCH_FUNCTION = "parlant_vector_search"
FIND_FUNCTION = "parlant_vector_find"
WRITE_FUNCTION = "parlant_vector_write"
VECTOR_FUNCTION_NAMES = (SEARCH_FUNCTION, FIND_FUNCTION, WRITE_FUNCTION)
MAX_VECTOR_DIMS = 2000
MAX_HALFVEC_DIMS = 4000
METADATA = "metadata"

#: Parlant 3.3's vector stores (the container wiring's store keys) → their vector collections
#: (tests/vector checks this against Parlant's code).
VECTOR_COLLECTIONS: Mapping[str, tuple[str, ...]] = {
    "glossary": ("glossary",),
    "canned_responses": ("canned_responses",),
    "journeys": ("journeys",),
    "capabilities": ("capabilities",),
}


def vector_prefix(store: str) -> str:
    """The default table prefix of vector store ``store``: ``parlant_<store>_vectors_``."""
    return f"parlant_{store}_vectors_"


def vector_table_name(prefix: str, collection: str) -> str:
    """The table of vector collection ``collection`` under ``prefix`` (naming.table_name's rules)."""
    if collection == METADATA:
        raise ConfigurationError(
            "a vector collection cannot be named 'metadata' (the metadata table has that name)"
        )
    return table_name(prefix, collection)


def parlant_vector_tables() -> list[str]:
    """Every table of Parlant's vector stores at their default prefixes (what `check` looks
    for): each store's metadata table, then its collections' tables."""
    return [
        name
        for store, collections in VECTOR_COLLECTIONS.items()
        for name in (
            metadata_table_name(vector_prefix(store)),
            *(vector_table_name(vector_prefix(store), c) for c in collections),
        )
    ]


def metadata_table_name(prefix: str) -> str:
    """The metadata table (upsert/read/remove_metadata) of the vector database ``prefix``."""
    return table_name(prefix, METADATA)


def column_type(dims: int) -> str:
    """``extensions.vector(N)`` up to 2,000 dimensions, ``extensions.halfvec(N)`` up to 4,000."""
    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        raise ConfigurationError(f"embedding dimensions must be a positive integer, got {dims!r}")
    if dims <= MAX_VECTOR_DIMS:
        return f"extensions.vector({dims})"
    if dims <= MAX_HALFVEC_DIMS:
        return f"extensions.halfvec({dims})"
    raise ConfigurationError(
        f"{dims} embedding dimensions exceed pgvector's HNSW limit ({MAX_HALFVEC_DIMS} for "
        "halfvec); use an embedder with fewer dimensions"
    )


def _ops(dims: int) -> str:
    return "vector_cosine_ops" if dims <= MAX_VECTOR_DIMS else "halfvec_cosine_ops"


def _vector_table(schema: str, name: str, dims: int) -> str:
    c = quote_ident
    target = qualified(schema, name)
    collate = 'COLLATE "C"'
    columns = [f"{c('id')} text {collate} NOT NULL PRIMARY KEY"]
    columns += [f"{c(column)} text {collate}" for column in MIRRORED_COLUMNS[1:]]
    columns += [
        f"{c('data')} jsonb NOT NULL",
        f"{c('checksum')} text {collate}",
        f"{c('embedding')} {column_type(dims)} NOT NULL",
        f"{c('seq')} bigint GENERATED ALWAYS AS IDENTITY",
    ]
    body = ",\n".join(f"    {column}" for column in columns)
    index = c((name[:50] + "_hnsw") if len(name) > 50 else name + "_hnsw")
    return "\n".join(
        [
            f"CREATE TABLE IF NOT EXISTS {target} (\n{body}\n);",
            f"COMMENT ON TABLE {target} IS {quote_literal(VECTOR_TABLE_COMMENT)};",
            f"ALTER TABLE {target} ENABLE ROW LEVEL SECURITY;",
            revoke_table_privileges(target),
            f"GRANT {TABLE_PRIVILEGES} ON TABLE {target} TO {c(SERVICE_ROLE)};",
            (
                f"CREATE INDEX IF NOT EXISTS {index} ON {target} "
                f"USING hnsw ({c('embedding')} extensions.{_ops(dims)});"
            ),
        ]
    )


def _metadata_table(schema: str, name: str) -> str:
    c = quote_ident
    target = qualified(schema, name)
    return "\n".join(
        [
            (
                f"CREATE TABLE IF NOT EXISTS {target} (\n"
                f'    {c("key")} text COLLATE "C" NOT NULL PRIMARY KEY,\n'
                f"    {c('value')} jsonb\n);"
            ),
            f"COMMENT ON TABLE {target} IS {quote_literal(VECTOR_METADATA_COMMENT)};",
            f"ALTER TABLE {target} ENABLE ROW LEVEL SECURITY;",
            revoke_table_privileges(target),
            f"GRANT {TABLE_PRIVILEGES} ON TABLE {target} TO {c(SERVICE_ROLE)};",
        ]
    )


def _vector_check(schema: str) -> str:
    """PL/pgSQL setting v_target, v_relid and v_type (the embedding's type) or raising."""
    comment = quote_literal(VECTOR_TABLE_COMMENT)
    return f"""
    IF p_table IS NULL OR p_table = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'P0001',
            MESSAGE = 'parlant-supabase-sync: p_table must name a vector collection table';
    END IF;
    v_target := pg_catalog.format('%I.%I', {quote_literal(schema)}, p_table);
    v_relid := pg_catalog.to_regclass(v_target);
    IF v_relid IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42P01',
            MESSAGE = pg_catalog.format('parlant-supabase-sync: table %s does not exist', v_target),
            HINT = 'Create it with the SQL of parlant_supabase_sync.vector_ddl.vector_schema_sql.';
    END IF;
    SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO v_type
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = v_relid AND a.attname = 'embedding' AND NOT a.attisdropped;
    IF pg_catalog.obj_description(v_relid, 'pg_class') IS DISTINCT FROM {comment}
       OR v_type IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0001',
            MESSAGE = pg_catalog.format('parlant-supabase-sync: %s is not a vector table', v_target);
    END IF;"""


def _where(schema: str) -> str:
    where = qualified(schema, WHERE_FUNCTION)
    return f"""
    SELECT COALESCE(pg_catalog.string_agg({where}(c.node), ' AND ' ORDER BY c.n), 'true')
      INTO v_where
      FROM pg_catalog.jsonb_array_elements(COALESCE(p_where, '[]'::jsonb)) WITH ORDINALITY AS c(node, n);"""


def _function(schema: str, name: str, params: str, types: str, body: str, note: str) -> str:
    target = qualified(schema, name)
    signature = f"{target}({types})"
    return (
        f"CREATE OR REPLACE FUNCTION {target}({params})\nRETURNS jsonb\nLANGUAGE plpgsql\n"
        "SECURITY INVOKER\nSET search_path = ''\n"
        f"AS {dollar_quote(body, 'function')};\n"
        f"COMMENT ON FUNCTION {signature} IS {quote_literal('parlant-supabase-sync: ' + note)};\n"
        f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC;\n"
        # Supabase's default privileges grant EXECUTE to the browser roles by name.
        + for_existing_roles(
            BROWSER_ROLES, lambda role: f"REVOKE ALL ON FUNCTION {signature} FROM {role};"
        )
        + f"\nGRANT EXECUTE ON FUNCTION {signature} TO {quote_ident(SERVICE_ROLE)};"
    )


_DECLARE = """
DECLARE
    v_target text;
    v_relid oid;
    v_type text;
    v_where text;
    v_rows jsonb;
"""


def search_function(schema: str) -> str:
    """``parlant_vector_search(p_table, p_embedding, p_k, p_where)`` → ``{"rows": [{data, distance}]}``.

    The k nearest rows by cosine distance, ordered by distance then id (ties at the k-th place
    too: the id is part of the ORDER BY, which PostgreSQL serves with an incremental sort over
    the HNSW index scan); with a filter, iterative index scans (pgvector ≥ 0.8, strict order)
    keep scanning until k rows match.
    """
    body = (
        _DECLARE
        + "BEGIN"
        + _vector_check(schema)
        + _where(schema)
        + """
    PERFORM pg_catalog.set_config('hnsw.ef_search',
        GREATEST(40, LEAST(COALESCE(p_k, 0), 1000))::text, true);
    BEGIN
        -- pgvector >= 0.8; older releases reserve the hnsw. prefix and refuse the name.
        PERFORM pg_catalog.set_config('hnsw.iterative_scan', 'strict_order', true);
    EXCEPTION WHEN undefined_object OR invalid_parameter_value OR invalid_name THEN
        NULL;
    END;
    EXECUTE pg_catalog.format(
        $q$SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'data', n.data, 'distance', n.distance) ORDER BY n.distance, n.id), '[]'::jsonb)
             FROM (SELECT t.id, t.data, (t.embedding OPERATOR(extensions.<=>) $1::%s)::float8 AS distance
                     FROM %s AS t WHERE %s
                    ORDER BY t.embedding OPERATOR(extensions.<=>) $1::%s, t.id
                    LIMIT %s) AS n$q$,
        v_type, v_target, v_where, v_type, GREATEST(COALESCE(p_k, 0), 0))
      INTO v_rows USING p_embedding;
    RETURN pg_catalog.jsonb_build_object('rows', v_rows);
END
"""
    )
    return _function(
        schema,
        SEARCH_FUNCTION,
        "p_table text, p_embedding text, p_k integer, p_where jsonb DEFAULT '[]'::jsonb",
        "text, text, integer, jsonb",
        body,
        "the p_k rows of p_table nearest to p_embedding (cosine distance) matching p_where",
    )


def find_function(schema: str) -> str:
    """``parlant_vector_find(p_table, p_where, p_limit)`` → ``{"rows": [{data, checksum}]}`` in
    insertion order."""
    body = (
        _DECLARE
        + "BEGIN"
        + _vector_check(schema)
        + _where(schema)
        + """
    EXECUTE pg_catalog.format(
        $q$SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'data', n.data, 'checksum', n.checksum) ORDER BY n.seq), '[]'::jsonb)
             FROM (SELECT t.data, t.checksum, t.seq FROM %s AS t WHERE %s
                    ORDER BY t.seq LIMIT %s) AS n$q$,
        v_target, v_where,
        CASE WHEN p_limit IS NULL THEN 'ALL' ELSE GREATEST(p_limit, 0)::text END)
      INTO v_rows;
    RETURN pg_catalog.jsonb_build_object('rows', v_rows, 'type', v_type);
END
"""
    )
    return _function(
        schema,
        FIND_FUNCTION,
        "p_table text, p_where jsonb DEFAULT '[]'::jsonb, p_limit integer DEFAULT NULL",
        "text, jsonb, integer",
        body,
        "documents of p_table matching p_where, in insertion order",
    )


def _mirrored_set(document: str) -> str:
    c = quote_ident
    return ", ".join(f"{c(column)} = {mirror(column, document)}" for column in MIRRORED_COLUMNS[1:])


def write_function(schema: str) -> str:
    """``parlant_vector_write(p_table, p_operation, p_args)``: ``put`` {document, checksum,
    embedding} → {"written": 1}; ``merge`` {id, params, checksum?, embedding?} → {"document"};
    ``delete`` {id} → {"deleted": document|null}; ``clear`` {} → {"deleted": n}. Each is idempotent (repeats are safe)."""
    c = quote_ident
    columns = ", ".join(
        c(column) for column in (*MIRRORED_COLUMNS, "data", "checksum", "embedding")
    )
    values = ", ".join(
        [mirror(column, "$1") for column in MIRRORED_COLUMNS] + ["$1", "$2", "$3::%s"]
    )
    updates = ", ".join(
        f"{c(column)} = EXCLUDED.{c(column)}"
        for column in (*MIRRORED_COLUMNS[1:], "data", "checksum", "embedding")
    )
    body = (
        _DECLARE
        + "    v_document jsonb;\n    v_count bigint;\nBEGIN"
        + _vector_check(schema)
        + f"""
    IF p_operation = 'put' THEN
        IF pg_catalog.jsonb_typeof(p_args -> 'document' -> 'id') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = 'parlant-supabase-sync: a vector document needs a string id';
        END IF;
        EXECUTE pg_catalog.format(
            $q$INSERT INTO %s AS t ({columns}) VALUES ({values})
               ON CONFLICT (id) DO UPDATE SET {updates}$q$, v_target, v_type)
          USING p_args -> 'document', p_args ->> 'checksum', p_args ->> 'embedding';
        RETURN pg_catalog.jsonb_build_object('written', 1);
    ELSIF p_operation = 'merge' THEN
        EXECUTE pg_catalog.format(
            $q$UPDATE %s AS t SET data = t.data || $2, {_mirrored_set("(t.data || $2)")},
                   checksum = COALESCE($3, t.checksum),
                   embedding = COALESCE($4::%s, t.embedding)
                WHERE t.id = $1 RETURNING t.data$q$, v_target, v_type)
          INTO v_document
          USING p_args ->> 'id', p_args -> 'params', p_args ->> 'checksum', p_args ->> 'embedding';
        RETURN pg_catalog.jsonb_build_object('document', v_document);
    ELSIF p_operation = 'clear' THEN
        EXECUTE pg_catalog.format($q$DELETE FROM %s AS t$q$, v_target);
        GET DIAGNOSTICS v_count = ROW_COUNT;
        RETURN pg_catalog.jsonb_build_object('deleted', v_count);
    ELSIF p_operation = 'delete' THEN
        EXECUTE pg_catalog.format($q$DELETE FROM %s AS t WHERE t.id = $1 RETURNING t.data$q$, v_target)
          INTO v_document USING p_args ->> 'id';
        RETURN pg_catalog.jsonb_build_object('deleted', v_document);
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'P0001',
        MESSAGE = pg_catalog.format('parlant-supabase-sync: unknown vector operation %s', p_operation);
END
"""
    )
    return _function(
        schema,
        WRITE_FUNCTION,
        "p_table text, p_operation text, p_args jsonb",
        "text, text, jsonb",
        body,
        "writes of the vector collections (put, merge, delete)",
    )


def vector_functions(schema: str = "public") -> str:
    """The vector RPC functions (and ``parlant_find_where``, which they compile filters with)."""
    return "\n\n".join(
        [
            find_functions(schema),
            search_function(schema),
            find_function(schema),
            write_function(schema),
        ]
    )


def vector_schema_sql(
    prefix: str, collections_with_dims: Mapping[str, int], schema: str = "public"
) -> str:
    """The SQL creating the vector database ``prefix``: one table per ``{collection: dims}``,
    the metadata table and the functions (idempotent; needs the extension ``vector`` in the
    schema ``extensions``, as Supabase installs it)."""
    return _script(schema, {prefix: collections_with_dims})


def _script(schema: str, databases: Mapping[str, Mapping[str, int]]) -> str:
    """Extension, then each database's metadata and collection tables, then the functions
    (shared by every vector database of the schema) once."""
    quote_ident(schema)
    parts = ["CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA extensions;"]
    for prefix, collections_with_dims in databases.items():
        parts.append(_metadata_table(schema, metadata_table_name(prefix)))
        for collection, dims in collections_with_dims.items():
            parts.append(_vector_table(schema, vector_table_name(prefix, collection), dims))
    parts.append(vector_functions(schema))
    parts.append(RELOAD_SCHEMA_CACHE)
    return "\n\n".join(parts) + "\n"


def parlant_vector_schema_sql(
    dims: int, stores: Sequence[str] | None = None, schema: str = "public"
) -> str:
    """The SQL for Parlant's vector stores (all, or ``stores``) at their default prefixes, for
    an embedder of ``dims`` dimensions."""
    chosen = list(VECTOR_COLLECTIONS) if stores is None else list(stores)
    unknown = [store for store in chosen if store not in VECTOR_COLLECTIONS]
    if unknown:
        raise ConfigurationError(
            f"unknown vector store(s) {', '.join(unknown)}; known: {', '.join(VECTOR_COLLECTIONS)}"
        )
    return _script(
        schema,
        {vector_prefix(store): dict.fromkeys(VECTOR_COLLECTIONS[store], dims) for store in chosen},
    )
