"""``parlant_find``: a read whose filter does not fit in a URL, sent in a POST body instead.

Supabase's gateway refuses request lines over 8 KiB, and Parlant filters over thousands of ids.
The core sends such reads as ``POST /rest/v1/rpc/parlant_find`` with the filter's tree
(``filters.Condition.tree``) and ordering (``filters.Order.terms``); ``parlant_find_where``
compiles the tree into the SQL PostgREST would run for the same filter in a URL: columns
compared as ``text`` (``COLLATE "C"``), ``data->key`` as ``jsonb``, ``isdistinct`` as
``IS DISTINCT FROM``, ``in`` as ``= ANY``. The differential tests run every filter both ways.
"""

from __future__ import annotations

from .ddl_functions import FIND_FUNCTION, SERVICE_ROLE, WHERE_FUNCTION, table_check
from .naming import MIRRORED_COLUMNS
from .sqltext import dollar_quote, qualified, quote_ident, quote_literal, text_array

__all__ = ["FIND_FUNCTION", "WHERE_FUNCTION", "find_functions"]

_OPERATORS = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "isdistinct": "IS DISTINCT FROM",
}


def _operator_case() -> str:
    whens = " ".join(
        f"WHEN {quote_literal(name)} THEN {quote_literal(sql)}" for name, sql in _OPERATORS.items()
    )
    return f"CASE p_node ->> 'op' {whens} END"


def _where_function(schema: str) -> str:
    target = qualified(schema, WHERE_FUNCTION)
    refuse = (
        "RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = "
        "pg_catalog.format('parlant-supabase-sync: unsupported filter node %s', p_node)"
    )
    body = f"""
DECLARE
    v_word text;
    v_parts text[];
    v_path text;
    v_type text;
    v_op text;
    v_sql text;
BEGIN
    IF p_node ? 'and' OR p_node ? 'or' THEN
        v_word := CASE WHEN p_node ? 'and' THEN 'and' ELSE 'or' END;
        SELECT pg_catalog.array_agg({target}(c.node) ORDER BY c.n) INTO v_parts
          FROM pg_catalog.jsonb_array_elements(p_node -> v_word) WITH ORDINALITY AS c(node, n);
        IF v_parts IS NULL THEN
            RETURN CASE v_word WHEN 'and' THEN 'true' ELSE 'false' END;
        END IF;
        RETURN '(' || pg_catalog.array_to_string(v_parts, CASE v_word WHEN 'and' THEN ' AND ' ELSE ' OR ' END) || ')';
    END IF;
    IF p_node -> 'p' ? 'col' THEN
        IF NOT (p_node -> 'p' ->> 'col') = ANY ({text_array(MIRRORED_COLUMNS)}) THEN
            {refuse};
        END IF;
        v_path := pg_catalog.format('t.%I', p_node -> 'p' ->> 'col');
        v_type := 'text';
    ELSIF p_node -> 'p' ? 'key' THEN
        v_path := pg_catalog.format('(t.%I -> %L)', 'data', p_node -> 'p' ->> 'key');
        v_type := 'jsonb';
    ELSE
        {refuse};
    END IF;
    IF p_node ? 'in' THEN
        v_sql := pg_catalog.format('%s = ANY (%L::%s[])', v_path,
            ARRAY(SELECT pg_catalog.jsonb_array_elements_text(p_node -> 'in'))::text, v_type);
        IF COALESCE((p_node ->> 'not')::boolean, false) THEN
            v_sql := 'NOT (' || v_sql || ')';
        END IF;
        RETURN v_sql;
    END IF;
    IF p_node ->> 'op' = 'is' AND p_node ->> 'v' = 'null' THEN
        RETURN v_path || ' IS NULL';
    END IF;
    v_op := {_operator_case()};
    IF v_op IS NULL OR p_node ->> 'v' IS NULL THEN
        {refuse};
    END IF;
    RETURN pg_catalog.format('%s %s %L::%s', v_path, v_op, p_node ->> 'v', v_type);
END
"""
    return (
        f"CREATE OR REPLACE FUNCTION {target}(p_node jsonb)\n"
        "RETURNS text\nLANGUAGE plpgsql\nIMMUTABLE\nSECURITY INVOKER\nSET search_path = ''\n"
        f"AS {dollar_quote(body, 'function')};\n"
        f"COMMENT ON FUNCTION {target}(jsonb) IS "
        + quote_literal("parlant-supabase-sync: SQL for one filter tree of parlant_find")
        + ";\n"
        f"REVOKE ALL ON FUNCTION {target}(jsonb) FROM PUBLIC;\n"
        f"GRANT EXECUTE ON FUNCTION {target}(jsonb) TO {quote_ident(SERVICE_ROLE)};"
    )


def _find_function(schema: str) -> str:
    target = qualified(schema, FIND_FUNCTION)
    where = qualified(schema, WHERE_FUNCTION)
    c = quote_ident
    body = f"""
DECLARE
    v_target text;
    v_relid oid;
    v_note text;
    v_columns text[];
    v_kind text;
    v_where text;
    v_order text;
    v_rows jsonb;
    v_total bigint;
    v_after text := 'false';
    v_prefix text := '';
    v_expr text;
    v_type text;
    v_literal text;
    v_descending boolean;
    v_step record;
BEGIN
{table_check(schema)}
    IF v_kind <> 'document' THEN
        RAISE EXCEPTION USING ERRCODE = 'P0001',
            MESSAGE = pg_catalog.format('parlant-supabase-sync: %s is not a document table', v_target);
    END IF;
    SELECT COALESCE(pg_catalog.string_agg({where}(c.node), ' AND ' ORDER BY c.n), 'true')
      INTO v_where
      FROM pg_catalog.jsonb_array_elements(COALESCE(p_where, '[]'::jsonb)) WITH ORDINALITY AS c(node, n);
    SELECT pg_catalog.string_agg(
               CASE WHEN o.term -> 'p' ? 'col'
                    THEN pg_catalog.format('t.%I', o.term -> 'p' ->> 'col')
                    ELSE pg_catalog.format('(t.%I -> %L)', 'data', o.term -> 'p' ->> 'key') END
               || CASE WHEN COALESCE((o.term ->> 'desc')::boolean, false) THEN ' DESC' ELSE ' ASC' END,
               ', ' ORDER BY o.n)
      INTO v_order
      FROM pg_catalog.jsonb_array_elements(COALESCE(p_order, '[]'::jsonb)) WITH ORDINALITY AS o(term, n);
    IF v_order IS NULL THEN
        v_order := 't.{c("creation_utc")} ASC, t.{c("id")} ASC';
    END IF;
    IF p_after IS NOT NULL THEN
        -- Keyset: rows strictly after the sort values p_after (one per p_order term, {{"v": …}}
        -- or {{"null": true}}), in PostgreSQL's order (ASC NULLS LAST, DESC NULLS FIRST).
        FOR v_step IN
            SELECT o.term, a.value
              FROM pg_catalog.jsonb_array_elements(p_order) WITH ORDINALITY AS o(term, n)
              JOIN pg_catalog.jsonb_array_elements(p_after) WITH ORDINALITY AS a(value, m)
                ON a.m = o.n
             ORDER BY o.n
        LOOP
            IF v_step.term -> 'p' ? 'col' THEN
                v_expr := pg_catalog.format('t.%I', v_step.term -> 'p' ->> 'col');
                v_type := 'text';
                v_literal := v_step.value ->> 'v';
            ELSE
                v_expr := pg_catalog.format('(t.%I -> %L)', 'data', v_step.term -> 'p' ->> 'key');
                v_type := 'jsonb';
                v_literal := (v_step.value -> 'v')::text;
            END IF;
            IF v_step.value ? 'null' THEN
                v_literal := NULL;
            END IF;
            v_descending := COALESCE((v_step.term ->> 'desc')::boolean, false);
            IF v_literal IS NULL THEN
                v_after := v_after || ' OR (' || v_prefix
                    || CASE WHEN v_descending THEN v_expr || ' IS NOT NULL' ELSE 'false' END || ')';
                v_prefix := v_prefix || v_expr || ' IS NULL AND ';
            ELSE
                v_after := v_after || ' OR (' || v_prefix || CASE WHEN v_descending
                    THEN pg_catalog.format('%s < %L::%s', v_expr, v_literal, v_type)
                    ELSE pg_catalog.format('(%s > %L::%s OR %s IS NULL)', v_expr, v_literal, v_type, v_expr)
                    END || ')';
                v_prefix := v_prefix || pg_catalog.format('%s = %L::%s AND ', v_expr, v_literal, v_type);
            END IF;
        END LOOP;
        v_where := v_where || ' AND (' || v_after || ')';
    END IF;
    EXECUTE pg_catalog.format(
        $q$SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'id', t.{c("id")}, 'creation_utc', t.{c("creation_utc")}, 'data', t.{c("data")})
                   ORDER BY %s), '[]'::jsonb)
             FROM (SELECT t.* FROM %s AS t WHERE %s ORDER BY %s LIMIT %s) AS t$q$,
        v_order, v_target, v_where, v_order,
        CASE WHEN p_limit IS NULL THEN 'ALL' ELSE GREATEST(p_limit, 0)::text END)
      INTO v_rows;
    IF COALESCE(p_count, false) THEN
        EXECUTE pg_catalog.format($q$SELECT pg_catalog.count(*) FROM %s AS t WHERE %s$q$,
                                  v_target, v_where)
          INTO v_total;
    END IF;
    RETURN pg_catalog.jsonb_build_object('rows', v_rows, 'total', v_total);
END
"""
    signature = f"{target}(text, jsonb, jsonb, integer, boolean, jsonb)"
    return (
        f"CREATE OR REPLACE FUNCTION {target}(\n"
        "    p_table text,\n    p_where jsonb DEFAULT '[]'::jsonb,\n"
        "    p_order jsonb DEFAULT '[]'::jsonb,\n    p_limit integer DEFAULT NULL,\n"
        "    p_count boolean DEFAULT false,\n    p_after jsonb DEFAULT NULL\n"
        ") RETURNS jsonb\n"
        "LANGUAGE plpgsql\nSTABLE\nSECURITY INVOKER\nSET search_path = ''\n"
        f"AS {dollar_quote(body, 'function')};\n"
        f"COMMENT ON FUNCTION {signature} IS "
        + quote_literal(
            "parlant-supabase-sync: rows (id, creation_utc, data) of p_table matching the filter "
            "tree p_where in the order p_order, and their total; for filters too long for a URL"
        )
        + ";\n"
        f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC;\n"
        f"GRANT EXECUTE ON FUNCTION {signature} TO {quote_ident(SERVICE_ROLE)};"
    )


def find_functions(schema: str) -> str:
    """The SQL creating ``parlant_find_where`` and ``parlant_find`` in ``schema``."""
    return _where_function(schema) + "\n\n" + _find_function(schema)
