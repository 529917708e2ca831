"""The generated SQL functions (called as ``POST /rest/v1/rpc/<name>``) and the receipts table.

* ``parlant_write(p_request_id, p_table, p_operation, p_args)``: every write of the adapter,
  exactly once. The outcome is recorded under the client's request id in the same transaction;
  a repeat of the id returns the recorded outcome (with ``"replayed": true``) instead of acting
  again, and a repeat racing the first attempt waits for it on the receipt's primary key.
* ``parlant_schema_report(p_tables)``: which tables and functions exist (for ``check`` and
  collection opens: one request); ``SchemaReport.from_report`` reads its answer.

Both run with the caller's privileges (``SECURITY INVOKER``) and ``search_path = ''``; the schema
is written in at generation time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .naming import MIRRORED_COLUMNS
from .sqltext import (
    columns_signature,
    dollar_quote,
    indent,
    mirror,
    qualified,
    quote_ident,
    quote_literal,
    text_array,
)

__all__ = [
    "DOCUMENT_SIGNATURE",
    "DOCUMENT_TABLE_COMMENT",
    "FAILED_KEY",
    "FAILED_SIGNATURE",
    "FAILED_TABLE_COMMENT",
    "FIND_FUNCTION",
    "FUNCTION_NAMES",
    "LEGACY_MERGE_FUNCTION",
    "RECEIPTS_TABLE",
    "RECEIPT_TTL",
    "REPORT_FUNCTION",
    "SERVICE_ROLE",
    "WHERE_FUNCTION",
    "WRITE_FUNCTION",
    "WRITE_OPERATIONS",
    "SchemaReport",
    "TableStatus",
    "receipts_table",
    "report_function",
    "table_check",
    "write_function",
]

DOCUMENT_TABLE_COMMENT = "parlant-supabase-sync document table"
FAILED_TABLE_COMMENT = "parlant-supabase-sync failed-migrations table"
RECEIPTS_TABLE_COMMENT = "parlant-supabase-sync write receipts"
WRITE_FUNCTION = "parlant_write"
REPORT_FUNCTION = "parlant_schema_report"
FIND_FUNCTION = "parlant_find"
WHERE_FUNCTION = "parlant_find_where"
#: The function earlier releases merged through; the upgrade script drops it.
LEGACY_MERGE_FUNCTION = "parlant_merge_document"
FUNCTION_NAMES = (WRITE_FUNCTION, FIND_FUNCTION, REPORT_FUNCTION)
RECEIPTS_TABLE = "parlant_write_receipts"
#: How long a write's outcome is kept for repeats of its request id.
RECEIPT_TTL = "24 hours"
SERVICE_ROLE = "service_role"
#: p_operation values of parlant_write, and the kind of table each works on.
WRITE_OPERATIONS = {
    "insert": "document",
    "insert_many": "document",
    "put_many": "document",
    "merge": "document",
    "delete": "document",
    "delete_many": "any",
    "clear": "any",
    "fail": "document",
}

DOCUMENT_SIGNATURE = sorted([f"{column} text" for column in MIRRORED_COLUMNS] + ["data jsonb"])
#: The failed-migrations tables' unique key (the seed's have none; the upgrade adds it).
FAILED_KEY = "failed_seq"
FAILED_SIGNATURE = sorted(["id text", "data jsonb", "failed_utc text", f"{FAILED_KEY} bigint"])


def receipts_table(schema: str) -> str:
    """The table ``parlant_write`` records outcomes in (only the service role may touch it)."""
    c = quote_ident
    target = qualified(schema, RECEIPTS_TABLE)
    return "\n".join(
        [
            f"CREATE TABLE IF NOT EXISTS {target} (",
            f"    {c('request_id')} text COLLATE {c('C')} NOT NULL PRIMARY KEY,",
            f"    {c('table_name')} text COLLATE {c('C')} NOT NULL,",
            f"    {c('operation')} text COLLATE {c('C')} NOT NULL,",
            f"    {c('outcome')} jsonb,",
            f"    {c('created_at')} timestamptz NOT NULL DEFAULT now()",
            ");",
            (
                f"CREATE INDEX IF NOT EXISTS {c(RECEIPTS_TABLE + '_created_at')} ON {target} "
                f"({c('created_at')});"
            ),
            f"COMMENT ON TABLE {target} IS "
            + quote_literal(f"{RECEIPTS_TABLE_COMMENT} (kept {RECEIPT_TTL})")
            + ";",
            f"ALTER TABLE {target} ENABLE ROW LEVEL SECURITY;",
            f"REVOKE ALL ON TABLE {target} FROM PUBLIC;",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {target} TO {c(SERVICE_ROLE)};",
        ]
    )


def _raise(message: str, errcode: str = "P0001", hint: str | None = None) -> str:
    extra = f",\n        HINT = {quote_literal(hint)}" if hint else ""
    return (
        f"RAISE EXCEPTION USING ERRCODE = {quote_literal(errcode)},\n"
        f"        MESSAGE = {message}{extra};"
    )


def _insert_sql(source: str, on_conflict: str = "") -> str:
    """``INSERT … SELECT`` of documents from the jsonb expression ``source`` (``d`` per row)."""
    c = quote_ident
    columns = ", ".join(c(column) for column in (*MIRRORED_COLUMNS, "data"))
    values = ", ".join([mirror(column, "d") for column in MIRRORED_COLUMNS] + ["d"])
    return f"INSERT INTO %s AS t ({columns}) SELECT {values} FROM {source}{on_conflict}"


def _merge_set(patch: str) -> str:
    """SET list merging the jsonb ``patch`` into ``t.data``, every mirrored column recomputed."""
    c = quote_ident
    merged = f"t.{c('data')} || {patch}"
    sets = [f"{c('data')} = {merged}"]
    # The id column cannot be NULL: a merged document without a string id keeps its row id.
    sets.append(f"{c('id')} = COALESCE({mirror('id', merged)}, t.{c('id')})")
    sets += [f"{c(column)} = {mirror(column, merged)}" for column in MIRRORED_COLUMNS[1:]]
    return ", ".join(sets)


def _put_set() -> str:
    c = quote_ident
    return ", ".join(
        f"{c(column)} = EXCLUDED.{c(column)}" for column in (*MIRRORED_COLUMNS[1:], "data")
    )


def table_check(schema: str) -> str:
    """PL/pgSQL setting v_target, v_relid, v_note, v_columns, v_kind for p_table (or raising)."""
    document = quote_literal(DOCUMENT_TABLE_COMMENT)
    failed = quote_literal(FAILED_TABLE_COMMENT)
    return f"""
    IF p_table IS NULL OR p_table = '' THEN
        {_raise("'parlant-supabase-sync: p_table must name a collection table'")}
    END IF;
    v_target := pg_catalog.format('%I.%I', {quote_literal(schema)}, p_table);
    v_relid := pg_catalog.to_regclass(v_target);
    IF v_relid IS NULL THEN
        {
        _raise(
            "pg_catalog.format('parlant-supabase-sync: table %s does not exist', v_target)",
            "42P01",
            "Generate the schema with `parlant-supabase-sync sql` and run it.",
        )
    }
    END IF;
    v_note := pg_catalog.obj_description(v_relid, 'pg_class');
    v_columns := {columns_signature("v_relid")};
    v_kind := CASE
        WHEN v_note = {document} AND v_columns = {text_array(DOCUMENT_SIGNATURE)} THEN 'document'
        WHEN v_note = {failed} AND v_columns = {text_array(FAILED_SIGNATURE)} THEN 'failed'
    END;
    IF v_kind IS NULL THEN
        {
        _raise(
            "pg_catalog.format('parlant-supabase-sync: %s is not a parlant-supabase-sync table', v_target)",
            hint="Only tables created by `parlant-supabase-sync sql` (or its upgrade script) can be written.",
        )
    }
    END IF;"""


def _operations(schema: str) -> str:
    """The body of parlant_write after the receipt is taken: one branch per operation."""
    c = quote_ident
    ident = f"t.{c('id')}"
    one_document = "(SELECT $1 AS d) AS e"
    many = "pg_catalog.jsonb_array_elements($1) AS e(d)"
    merge_update = (
        f"UPDATE %s AS t SET {_merge_set('$2')} WHERE {ident} = $1 RETURNING t.{c('data')}"
    )
    upsert = _insert_sql(
        one_document,
        f" ON CONFLICT ({c('id')}) DO UPDATE SET {_merge_set('EXCLUDED.' + c('data'))}"
        f" RETURNING t.{c('data')}, (t.xmax = 0)",
    )
    ids = "ARRAY(SELECT pg_catalog.jsonb_array_elements_text($1))"
    needs_id = _raise(quote_literal('parlant-supabase-sync: a document needs a string "id"'))
    upsert_needs_id = _raise(
        quote_literal('parlant-supabase-sync: an upserted document needs a string "id"')
    )
    return f"""
    IF p_operation = 'insert' THEN
        v_doc := p_args -> 'document';
        PERFORM 1 WHERE pg_catalog.jsonb_typeof(v_doc -> 'id') = 'string';
        IF NOT FOUND THEN
            {needs_id}
        END IF;
        EXECUTE pg_catalog.format($q${_insert_sql(one_document)}$q$, v_target) USING v_doc;
        v_outcome := pg_catalog.jsonb_build_object('inserted', 1);
    ELSIF p_operation = 'insert_many' OR p_operation = 'put_many' THEN
        IF pg_catalog.jsonb_typeof(p_args -> 'documents') IS DISTINCT FROM 'array' THEN
            {_raise("'parlant-supabase-sync: p_args.documents must be an array'")}
        END IF;
        IF p_operation = 'insert_many' THEN
            EXECUTE pg_catalog.format($q${_insert_sql(many)}$q$, v_target)
                USING p_args -> 'documents';
        ELSE
            EXECUTE pg_catalog.format(
                $q${_insert_sql(many, f" ON CONFLICT ({c('id')}) DO UPDATE SET {_put_set()}")}$q$,
                v_target) USING p_args -> 'documents';
        END IF;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_outcome := pg_catalog.jsonb_build_object('written', v_count);
    ELSIF p_operation = 'merge' THEN
        v_params := p_args -> 'params';
        IF pg_catalog.jsonb_typeof(v_params) IS DISTINCT FROM 'object' THEN
            {_raise("'parlant-supabase-sync: p_args.params must be a JSON object'")}
        END IF;
        IF v_params ? 'id' AND pg_catalog.jsonb_typeof(v_params -> 'id') <> 'string' THEN
            {_raise("'parlant-supabase-sync: a document id must be a string'")}
        END IF;
        v_inserted := false;
        IF p_args ->> 'id' IS NOT NULL THEN
            -- One UPDATE: the row lock makes a concurrent merge wait, and READ COMMITTED then
            -- re-evaluates the merge on the row version that merge committed, so merges of
            -- disjoint keys never lose each other's keys.
            EXECUTE pg_catalog.format($q${merge_update}$q$, v_target)
                INTO v_doc USING p_args ->> 'id', v_params;
        END IF;
        IF v_doc IS NULL AND COALESCE((p_args ->> 'upsert')::boolean, false) THEN
            IF pg_catalog.jsonb_typeof(v_params -> 'id') IS DISTINCT FROM 'string' THEN
                {upsert_needs_id}
            END IF;
            -- Insert, or merge into the row a concurrent upsert of the same id just committed.
            EXECUTE pg_catalog.format($q${upsert}$q$, v_target)
                INTO v_doc, v_inserted USING v_params;
        END IF;
        v_outcome := pg_catalog.jsonb_build_object(
            'matched', v_doc IS NOT NULL AND NOT v_inserted,
            'inserted', v_inserted,
            'document', v_doc);
    ELSIF p_operation = 'delete' THEN
        EXECUTE pg_catalog.format(
            $q$DELETE FROM %s AS t WHERE {ident} = $1 RETURNING t.{c("data")}$q$, v_target)
            INTO v_doc USING p_args ->> 'id';
        v_outcome := pg_catalog.jsonb_build_object('deleted', v_doc);
    ELSIF p_operation = 'delete_many' THEN
        EXECUTE pg_catalog.format(
            $q$DELETE FROM %s AS t WHERE {ident} = ANY ({ids})$q$, v_target)
            USING p_args -> 'ids';
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_outcome := pg_catalog.jsonb_build_object('deleted', v_count);
    ELSIF p_operation = 'clear' THEN
        EXECUTE pg_catalog.format($q$DELETE FROM %s AS t WHERE true$q$, v_target);
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_outcome := pg_catalog.jsonb_build_object('deleted', v_count);
    ELSIF p_operation = 'fail' THEN
        -- Move rejected documents to the failed-migrations table in one statement: a copy
        -- and its removal commit together, so nothing is lost or kept twice.
        v_failed := pg_catalog.format('%I.%I', {quote_literal(schema)}, p_args ->> 'failed_table');
        IF pg_catalog.to_regclass(v_failed) IS NULL
           OR pg_catalog.obj_description(pg_catalog.to_regclass(v_failed), 'pg_class')
              IS DISTINCT FROM {quote_literal(FAILED_TABLE_COMMENT)} THEN
            {_raise("pg_catalog.format('parlant-supabase-sync: %s is not a failed-migrations table', v_failed)")}
        END IF;
        EXECUTE pg_catalog.format(
            $q$WITH moved AS (DELETE FROM %s AS t WHERE {ident} = ANY ({ids}) RETURNING t.{c("id")}, t.{c("data")})
               INSERT INTO %s ({c("id")}, {c("data")}, {c("failed_utc")})
               SELECT moved.{c("id")}, moved.{c("data")}, $2 FROM moved$q$,
            v_target, v_failed) USING p_args -> 'ids', p_args ->> 'failed_utc';
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_outcome := pg_catalog.jsonb_build_object('failed', v_count);
    ELSE
        {_raise("pg_catalog.format('parlant-supabase-sync: unknown write operation %L', p_operation)")}
    END IF;"""


def write_function(schema: str) -> str:
    """``parlant_write``: every write of the adapter, recorded under its request id."""
    receipts = qualified(schema, RECEIPTS_TABLE)
    c = quote_ident
    document_only = text_array(op for op, kind in WRITE_OPERATIONS.items() if kind == "document")
    body = f"""
DECLARE
    v_target text;
    v_relid oid;
    v_note text;
    v_columns text[];
    v_kind text;
    v_receipt record;
    v_outcome jsonb;
    v_doc jsonb;
    v_params jsonb;
    v_inserted boolean;
    v_count bigint;
    v_failed text;
BEGIN
    IF p_request_id IS NULL OR pg_catalog.length(p_request_id) NOT BETWEEN 16 AND 128 THEN
        {_raise("'parlant-supabase-sync: p_request_id must be 16 to 128 characters'")}
    END IF;
{table_check(schema)}
    IF v_kind = 'failed' AND p_operation = ANY ({document_only}) THEN
        {_raise("pg_catalog.format('parlant-supabase-sync: %s is a failed-migrations table', v_target)")}
    END IF;

    -- The receipt first: a repeat of a committed write finds it and returns the outcome; a
    -- repeat racing the first attempt waits here on the primary key until that one ends.
    INSERT INTO {receipts} ({c("request_id")}, {c("table_name")}, {c("operation")})
    VALUES (p_request_id, p_table, p_operation)
    ON CONFLICT ({c("request_id")}) DO NOTHING;
    IF NOT FOUND THEN
        SELECT r.{c("table_name")} AS table_name, r.{c("operation")} AS operation,
               r.{c("outcome")} AS outcome
          INTO v_receipt FROM {receipts} AS r WHERE r.{c("request_id")} = p_request_id;
        IF v_receipt.table_name IS DISTINCT FROM p_table
           OR v_receipt.operation IS DISTINCT FROM p_operation THEN
            {_raise("'parlant-supabase-sync: this request id was used for another write'")}
        END IF;
        RETURN v_receipt.outcome || '{{"replayed": true}}'::jsonb;
    END IF;
{_operations(schema)}

    UPDATE {receipts} AS r SET {c("outcome")} = v_outcome WHERE r.{c("request_id")} = p_request_id;
    -- Prune a few expired receipts per write (never waiting for a row another write holds).
    DELETE FROM {receipts} AS r WHERE r.{c("request_id")} IN (
        SELECT x.{c("request_id")} FROM {receipts} AS x
         WHERE x.{c("created_at")} < pg_catalog.now() - interval {quote_literal(RECEIPT_TTL)}
         ORDER BY x.{c("created_at")} LIMIT 32 FOR UPDATE SKIP LOCKED);
    RETURN v_outcome;
END
"""
    target = qualified(schema, WRITE_FUNCTION)
    signature = f"{target}(text, text, text, jsonb)"
    return (
        f"CREATE OR REPLACE FUNCTION {target}(\n"
        "    p_request_id text,\n    p_table text,\n    p_operation text,\n"
        "    p_args jsonb DEFAULT '{}'::jsonb\n"
        ") RETURNS jsonb\n"
        "LANGUAGE plpgsql\nVOLATILE\nSECURITY INVOKER\nSET search_path = ''\n"
        f"AS {dollar_quote(indent(body, 0), 'function')};\n"
        f"COMMENT ON FUNCTION {signature} IS "
        + quote_literal(
            "parlant-supabase-sync: one write of the adapter (insert, merge/upsert, delete, bulk "
            f"and loader writes), exactly once per request id (outcomes kept {RECEIPT_TTL})"
        )
        + ";\n"
        f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC;\n"
        f"GRANT EXECUTE ON FUNCTION {signature} TO {c(SERVICE_ROLE)};"
    )


def report_function(schema: str) -> str:
    """``parlant_schema_report``: tables, functions and the receipts table, in one answer.

    Besides existence it reports what ``check`` needs to tell whether the browser roles can
    reach anything: per table ``rls``, ``policies`` (name, roles, cmd, permissive) and
    ``grants`` (the privileges anon, authenticated and PUBLIC hold, column grants included);
    the same for the receipts table (``receipts_table``); per function whether anon,
    authenticated and PUBLIC may execute it (``function_grants``, null when missing); and
    whether the function earlier releases used is still there (``legacy_functions``).
    """
    namespace = (
        "(SELECT n.oid FROM pg_catalog.pg_namespace AS n WHERE n.nspname = "
        f"{quote_literal(schema)})"
    )
    document = quote_literal(DOCUMENT_TABLE_COMMENT)
    failed = quote_literal(FAILED_TABLE_COMMENT)
    privileges = " AND ".join(
        f"has_table_privilege(f.relid, {quote_literal(privilege)})"
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")
    )
    # The API roles that exist here (PUBLIC always does), as has_*_privilege spells them.
    api_roles = (
        "(SELECT g.role FROM unnest(ARRAY['anon', 'authenticated', 'public']::text[]) AS g(role) "
        "WHERE g.role = 'public' OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS ro "
        "WHERE ro.rolname = g.role))"
    )

    def grants(relid: str) -> str:
        # Column privileges count too: has_any_column_privilege is true for a table grant
        # or a grant on any one column.
        held = (
            "SELECT jsonb_agg(pr.name ORDER BY pr.ord) FROM unnest("
            "ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']::text[]"
            ") WITH ORDINALITY AS pr(name, ord) WHERE CASE WHEN pr.name IN ('SELECT', 'INSERT', "
            f"'UPDATE', 'REFERENCES') THEN pg_catalog.has_any_column_privilege(ar.role, {relid}, pr.name) "
            f"ELSE pg_catalog.has_table_privilege(ar.role, {relid}, pr.name) END"
        )
        return (
            f"(SELECT COALESCE(jsonb_object_agg(ar.role, COALESCE(({held}), '[]'::jsonb)), "
            f"'{{}}'::jsonb) FROM {api_roles} AS ar(role) WHERE {relid} IS NOT NULL)"
        )

    def policies(relid: str) -> str:
        return (
            "COALESCE((SELECT jsonb_agg(jsonb_build_object("
            "'name', po.policyname::text, 'roles', to_jsonb(po.roles::text[]), "
            "'cmd', po.cmd, 'permissive', po.permissive = 'PERMISSIVE') ORDER BY po.policyname) "
            "FROM pg_catalog.pg_policies AS po JOIN pg_catalog.pg_class AS pc "
            "ON pc.relname = po.tablename AND pc.relnamespace = "
            f"{namespace} WHERE po.schemaname = {quote_literal(schema)} AND pc.oid = {relid}), "
            "'[]'::jsonb)"
        )

    receipts = f"pg_catalog.to_regclass({quote_literal(qualified(schema, RECEIPTS_TABLE))})"
    procs = (
        f"pg_catalog.pg_proc AS p WHERE p.proname::text = fn.name AND p.pronamespace = {namespace}"
    )
    function_grants = (
        "SELECT jsonb_object_agg(fn.name, CASE WHEN EXISTS (SELECT 1 FROM "
        f"{procs}) THEN (SELECT jsonb_object_agg(ar.role, (SELECT bool_or("
        f"pg_catalog.has_function_privilege(ar.role, p.oid, 'EXECUTE')) FROM {procs})) "
        f"FROM {api_roles} AS ar(role)) END) "
        # The adapter's functions, and any other function with the adapter's comment (helpers).
        f"FROM (SELECT u.name FROM unnest({text_array(FUNCTION_NAMES)}) AS u(name) UNION "
        "SELECT x.proname::text FROM pg_catalog.pg_proc AS x "
        f"WHERE x.pronamespace = {namespace} AND x.proname::text <> {quote_literal(LEGACY_MERGE_FUNCTION)} "
        "AND pg_catalog.obj_description(x.oid, 'pg_proc') LIKE 'parlant-supabase-sync:%') AS fn(name)"
    )
    body = f"""
    WITH requested AS (
        SELECT DISTINCT u.name
          FROM unnest(COALESCE(p_tables, ARRAY[]::text[])) AS u(name)
         WHERE u.name IS NOT NULL
    ), found AS (
        SELECT r.name, c.oid AS relid, c.relrowsecurity AS rls,
               pg_catalog.obj_description(c.oid, 'pg_class') AS note,
               {columns_signature("c.oid")} AS columns
          FROM requested AS r
          LEFT JOIN pg_catalog.pg_class AS c
            ON c.relname::text = r.name
           AND c.relnamespace = {namespace}
           AND c.relkind IN ('r', 'p')
    )
    SELECT jsonb_build_object(
        'schema', {quote_literal(schema)}::text,
        'collation', (SELECT CASE WHEN d.datlocprovider = 'i'
                                  THEN 'icu:' || COALESCE(pg_catalog.to_jsonb(d) ->> 'daticulocale',
                                                          pg_catalog.to_jsonb(d) ->> 'datlocale')
                                  ELSE d.datcollate::text END
                        FROM pg_catalog.pg_database AS d
                       WHERE d.datname = pg_catalog.current_database()),
        'receipts', {receipts} IS NOT NULL,
        'receipts_table', (
            SELECT jsonb_build_object(
                'rls', c.relrowsecurity,
                'policies', {policies("c.oid")},
                'grants', {grants("c.oid")})
              FROM pg_catalog.pg_class AS c WHERE c.oid = {receipts}),
        'tables', COALESCE((
            SELECT jsonb_object_agg(f.name, jsonb_build_object(
                'exists', f.relid IS NOT NULL,
                'adapter', COALESCE(
                    (f.note = {document} AND f.columns = {text_array(DOCUMENT_SIGNATURE)})
                    OR (f.note = {failed} AND f.columns = {text_array(FAILED_SIGNATURE)}),
                    false),
                'kind', CASE f.note WHEN {document} THEN 'document'
                                    WHEN {failed} THEN 'failed-migrations' END,
                'rls', COALESCE(f.rls, false),
                'access', COALESCE(f.relid IS NOT NULL AND {privileges}, false),
                'policies', {policies("f.relid")},
                'grants', COALESCE({grants("f.relid")}, '{{}}'::jsonb)))
              FROM found AS f), '{{}}'::jsonb),
        'functions', (
            SELECT jsonb_object_agg(fn.name, EXISTS (
                       SELECT 1 FROM pg_catalog.pg_proc AS p
                        WHERE p.proname::text = fn.name AND p.pronamespace = {namespace}))
              FROM unnest({text_array(FUNCTION_NAMES)}) AS fn(name)),
        'function_grants', ({function_grants}),
        'legacy_functions', jsonb_build_object(
            {quote_literal(LEGACY_MERGE_FUNCTION)}, EXISTS (
                SELECT 1 FROM pg_catalog.pg_proc AS p
                 WHERE p.proname::text = {quote_literal(LEGACY_MERGE_FUNCTION)}
                   AND p.pronamespace = {namespace}))
    )
"""
    target = qualified(schema, REPORT_FUNCTION)
    return (
        f"CREATE OR REPLACE FUNCTION {target}(p_tables text[])\n"
        "RETURNS jsonb\n"
        "LANGUAGE sql\nSTABLE\nSECURITY INVOKER\nSET search_path = ''\n"
        f"AS {dollar_quote(body, 'function')};\n"
        f"COMMENT ON FUNCTION {target}(text[]) IS "
        + quote_literal(
            f"parlant-supabase-sync: which of p_tables exist in schema {schema}, are adapter "
            "tables, have RLS enabled and are accessible, and which adapter functions exist"
        )
        + ";\n"
        f"REVOKE ALL ON FUNCTION {target}(text[]) FROM PUBLIC;\n"
        f"GRANT EXECUTE ON FUNCTION {target}(text[]) TO {quote_ident(SERVICE_ROLE)};"
    )


# --- what parlant_schema_report answers, parsed (readiness and wiring read it) ---------------


@dataclass(frozen=True)
class TableStatus:
    """Whether a table exists, was made by (or upgraded for) the adapter, and has RLS on.

    `access`: the key's role may select/insert/update/delete. None when the database could
    not tell (no report function). `policies`: the table's row-level-security policies, each
    `{"name", "roles", "cmd", "permissive"}`; `grants`: the privileges each browser role
    (`anon`, `authenticated`, `public` for PUBLIC) holds on it. Both None when unknown.
    """

    exists: bool
    adapter: bool | None = None
    rls: bool | None = None
    access: bool | None = None
    policies: list[dict[str, Any]] | None = None
    grants: dict[str, list[str]] | None = None

    @classmethod
    def from_report(cls, raw: Any, *, exists: bool | None = None) -> TableStatus:
        """A status from one table entry of `parlant_schema_report`'s answer."""
        entry = raw if isinstance(raw, dict) else {}
        policies, grants = entry.get("policies"), entry.get("grants")
        return cls(
            exists=bool(entry.get("exists")) if exists is None else exists,
            adapter=entry.get("adapter"),
            rls=entry.get("rls"),
            access=entry.get("access"),
            policies=[dict(p) for p in policies if isinstance(p, dict)]
            if isinstance(policies, list)
            else None,
            grants={
                str(role): [str(x) for x in held]
                for role, held in grants.items()
                if isinstance(held, list)
            }
            if isinstance(grants, dict)
            else None,
        )


@dataclass(frozen=True)
class SchemaReport:
    """Tables and adapter functions present in the database (`from_report_function` False: probed).

    From a current report function also: the receipts table's RLS, policies and grants
    (`receipts_table`, None when missing or unknown), which browser roles may execute each
    function (`function_grants`: name → {role: bool}, None for a missing function; the whole
    mapping None when the report function is from an older release) and which functions of
    earlier releases are still there (`legacy_functions`).
    """

    tables: dict[str, TableStatus]
    functions: dict[str, bool]
    from_report_function: bool = True
    receipts_table: TableStatus | None = None
    function_grants: dict[str, dict[str, bool] | None] | None = None
    legacy_functions: list[str] = field(default_factory=list)
    collation: str | None = None  # the database's default collation (datcollate)

    def absent_functions(self, names: Sequence[str]) -> list[str]:
        """Which of `names` (functions outside FUNCTION_NAMES that carry the adapter's comment,
        e.g. the vector functions) do not exist; [] when the report cannot tell (an older
        report function, or a probe)."""
        known = self.function_grants
        return [] if known is None else [name for name in names if name not in known]

    @classmethod
    def from_report(cls, raw: Any, names: Sequence[str]) -> SchemaReport:
        """The report for `names` from `parlant_schema_report`'s answer."""
        report = raw if isinstance(raw, dict) else {}
        raw_tables = report.get("tables")
        raw_tables = raw_tables if isinstance(raw_tables, dict) else {}
        functions = dict.fromkeys(FUNCTION_NAMES, True)
        if isinstance(report.get("functions"), dict):
            functions.update({str(k): bool(v) for k, v in report["functions"].items()})
        if report.get("receipts") is False:
            functions[RECEIPTS_TABLE] = False  # the receipts come with the functions' SQL
        receipts, grants, legacy = (
            report.get("receipts_table"),
            report.get("function_grants"),
            report.get("legacy_functions"),
        )
        return cls(
            {name: TableStatus.from_report(raw_tables.get(name)) for name in names},
            functions,
            receipts_table=TableStatus.from_report(receipts, exists=True)
            if isinstance(receipts, dict)
            else None,
            function_grants={
                str(fn): {str(role): bool(v) for role, v in roles.items()}
                if isinstance(roles, dict)
                else None
                for fn, roles in grants.items()
            }
            if isinstance(grants, dict)
            else None,
            legacy_functions=[str(fn) for fn, present in legacy.items() if present]
            if isinstance(legacy, dict)
            else [],
            collation=str(report["collation"]) if report.get("collation") else None,
        )
