"""The SQL generator's text: names, collations, indexes, policies, grants, functions, quoting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from parlant_supabase_sync import ddl, ddl_indexes, ddl_upgrade
from parlant_supabase_sync.errors import ConfigurationError
from parlant_supabase_sync.naming import (
    DEFAULT_STORES,
    MAX_IDENTIFIER_BYTES,
    PARLANT_STORES,
    all_table_names,
    truncate_identifier,
)

# Every btree index the seed SQL created, as PostgreSQL stored the names (its GIN indexes on
# data are dropped by the upgrade: tests/unit/test_ddl_indexes.py).
SEED_INDEXES = [
    *(
        f"idx_{prefix}_{suffix}"
        for prefix in (
            "parlant_sessions_",
            "parlant_customers_",
            "parlant_context_variables_",
        )
        for suffix in (
            "creation_utc",
            "session_id",
            "customer_id",
            "agent_id",
        )
    ),
    "idx_parlant_sessions_metadata_creation_utc",
    "idx_parlant_customers_metadata_creation_utc",
    "idx_parlant_context_variables_metadata_creation_utc",
    "idx_parlant_sessions_events_creation_utc",
    "idx_parlant_sessions_events_session_id",
    "idx_parlant_customers_customer_tag_associations_creation_utc",
    "idx_parlant_context_variables_variable_tag_associations_creatio",
    "idx_parlant_context_variables_values_creation_utc",
]

ALL_SQL = ddl.generate_schema(ddl.default_stores(), include_functions=True)


def uncommented(sql: str) -> str:
    return "\n".join(
        line for line in sql.splitlines() if not line.lstrip().startswith("--")
    )


def created_indexes(sql: str) -> dict[str, str]:
    return dict(
        re.findall(r'CREATE INDEX IF NOT EXISTS "([^"]+)" ON (.*);', uncommented(sql))
    )


def test_quote_ident_doubles_quotes_and_refuses_what_postgresql_would_cut() -> None:
    assert ddl.quote_ident("plain") == '"plain"'
    assert ddl.quote_ident('we"ird') == '"we""ird"'
    with pytest.raises(ConfigurationError, match="63 bytes"):
        ddl.quote_ident("x" * 64)
    with pytest.raises(ConfigurationError):
        ddl.quote_ident("")


def test_quote_literal_doubles_single_quotes() -> None:
    assert ddl.quote_literal("it's") == "'it''s'"
    with pytest.raises(ConfigurationError):
        ddl.quote_literal("nul\x00")


def test_schema_creates_every_seed_table() -> None:
    for spec in DEFAULT_STORES.values():
        for table in all_table_names(spec.prefix, spec.collections):
            assert f'CREATE TABLE IF NOT EXISTS "public"."{table}" (' in ALL_SQL


def test_schema_creates_the_seed_indexes_under_the_seed_names() -> None:
    indexes = created_indexes(ALL_SQL)
    for name in SEED_INDEXES:
        assert name[:MAX_IDENTIFIER_BYTES] in indexes, name
    assert indexes["idx_parlant_sessions__session_id"].endswith(
        'USING btree ("session_id") WHERE ("session_id" IS NOT NULL)'
    )


def test_schema_adds_the_indexes_parlant_asks_for() -> None:
    definitions = list(created_indexes(ALL_SQL).values())

    def on(table: str, columns: str) -> bool:
        return f'"public"."{table}" USING btree ({columns})' in definitions

    for spec in DEFAULT_STORES.values():
        for collection in spec.collections:
            table = all_table_names(spec.prefix, [collection])[0]
            assert on(table, '"creation_utc", "id"'), table
    assert on("parlant_sessions_", '"agent_id", "creation_utc", "id"')
    assert on("parlant_sessions_", '"customer_id", "creation_utc", "id"')
    assert on("parlant_sessions_events", '"session_id", ("data" -> \'offset\')')
    assert on(
        "parlant_sessions_events",
        '"session_id", ("data" -> \'deleted\'), ("data" -> \'offset\')',
    )
    assert on("parlant_customers_customer_tag_associations", '"customer_id"')
    assert on("parlant_customers_customer_tag_associations", "(\"data\" -> 'tag_id')")
    assert on(
        "parlant_context_variables_variable_tag_associations",
        "(\"data\" -> 'variable_id')",
    )
    assert on(
        "parlant_context_variables_variable_tag_associations", "(\"data\" -> 'tag_id')"
    )
    assert on(
        "parlant_context_variables_values",
        "(\"data\" -> 'variable_id'), (\"data\" -> 'key')",
    )


def test_no_unique_index_on_documents_and_the_reason_is_written_down() -> None:
    # The only unique indexes are the failed-migration tables' keys (listings page by them).
    unique = re.findall(r"CREATE UNIQUE INDEX IF NOT EXISTS \S+ ON (\S+) \((\S+)\)", uncommented(ALL_SQL))
    assert unique and all(
        "_failed_migr" in table and column == '"failed_seq"' for table, column in unique
    )
    assert "Not UNIQUE" in Path(ddl_indexes.__file__).read_text()


def test_relation_names_are_unique_and_fit() -> None:
    text = uncommented(ALL_SQL)
    tables = re.findall(r'CREATE TABLE IF NOT EXISTS "public"\."([^"]+)"', text)
    names = tables + list(created_indexes(ALL_SQL))
    assert len(names) == len(set(names))
    assert all(len(name.encode()) <= MAX_IDENTIFIER_BYTES for name in names)


def test_text_columns_use_the_c_collation() -> None:
    for column in ddl.MIRRORED_COLUMNS:
        assert f'"{column}" text COLLATE "C"' in ALL_SQL
    assert '"id" text COLLATE "C" NOT NULL PRIMARY KEY' in ALL_SQL
    assert "\"data\" jsonb NOT NULL DEFAULT '{}'::jsonb" in ALL_SQL


def test_failed_tables_keep_the_seed_shape_plus_failed_utc_and_a_key() -> None:
    block = ALL_SQL.split(
        'CREATE TABLE IF NOT EXISTS "public"."parlant_sessions_events_failed_migrations" ('
    )[1]
    block = block.split(");")[0]
    columns = [line.strip().split()[0] for line in block.strip().splitlines()]
    assert columns == ['"id"', '"data"', '"failed_utc"', '"failed_seq"']
    assert "PRIMARY KEY" not in block
    assert '"failed_seq" bigint GENERATED BY DEFAULT AS IDENTITY' in block


def test_every_table_has_rls_a_comment_and_a_service_role_grant() -> None:
    for spec in DEFAULT_STORES.values():
        for collection in spec.collections:
            for table in all_table_names(spec.prefix, [collection]):
                target = f'"public"."{table}"'
                assert f"ALTER TABLE {target} ENABLE ROW LEVEL SECURITY;" in ALL_SQL
                assert (
                    f"COMMENT ON TABLE {target} IS 'parlant-supabase-sync " in ALL_SQL
                )
                assert (
                    f'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {target} TO "service_role";'
                    in ALL_SQL
                )


def test_default_anon_policy_creates_no_policy_and_grants_nothing_to_anon() -> None:
    text = uncommented(ALL_SQL)
    assert "CREATE POLICY" not in text
    grants = [line for line in text.splitlines() if line.lstrip().startswith("GRANT ")]
    assert grants and all(line.endswith(' TO "service_role";') for line in grants)
    assert ddl.anon_policy_warning("none") is None
    # The per-customer example is there, commented out.
    assert "-- " in ALL_SQL and "customers read their own rows" in ALL_SQL


def test_allow_all_reproduces_the_seed_policies_and_warns() -> None:
    sql = ddl.generate_schema(ddl.default_stores(), "allow-all")
    for spec in DEFAULT_STORES.values():
        for table in all_table_names(spec.prefix, spec.collections):
            policy = f"Allow all operations on {table}".encode()[
                :MAX_IDENTIFIER_BYTES
            ].decode()
            assert f'CREATE POLICY "{policy}" ON "public"."{table}"' in sql
            assert (
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE "public"."{table}" TO "anon", "authenticated";'
                in sql
            )
    assert "FOR ALL USING (true) WITH CHECK (true)" in sql
    warning = ddl.anon_policy_warning("allow-all")
    assert warning is not None and "anon" in warning
    assert warning in sql


def test_per_customer_policy_only_on_tables_with_customer_rows() -> None:
    sql = uncommented(ddl.generate_schema(ddl.default_stores(), "per-customer"))
    policies = re.findall(r'CREATE POLICY "[^"]+" ON "public"\."([^"]+)"', sql)
    assert policies == [
        "parlant_sessions_",
        "parlant_customers_customer_tag_associations",
    ]
    assert '(SELECT "auth"."uid"())::text = "customer_id"' in sql
    assert 'FOR SELECT TO "authenticated"' in sql


def test_policies_are_created_only_when_missing() -> None:
    sql = ddl.generate_schema({"parlant_sessions_": ["sessions"]}, "allow-all")
    assert "IF NOT EXISTS (\n        SELECT 1 FROM pg_catalog.pg_policies" in sql


def test_unknown_anon_policy_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="allow-all"):
        ddl.generate_schema(ddl.default_stores(), "public")  # type: ignore[arg-type]


def test_functions_have_the_contract_signatures() -> None:
    sql = ddl.generate_functions()
    assert (
        'CREATE OR REPLACE FUNCTION "public"."parlant_write"(\n'
        "    p_request_id text,\n    p_table text,\n    p_operation text,\n"
        "    p_args jsonb DEFAULT '{}'::jsonb\n"
        ") RETURNS jsonb\nLANGUAGE plpgsql\nVOLATILE\nSECURITY INVOKER\nSET search_path = ''\n"
    ) in sql
    assert (
        'CREATE OR REPLACE FUNCTION "public"."parlant_schema_report"(p_tables text[])\n'
        "RETURNS jsonb\nLANGUAGE sql\nSTABLE\nSECURITY INVOKER\nSET search_path = ''\n"
    ) in sql
    assert "current_schema()" not in uncommented(sql)
    assert "pg_catalog.format('%I.%I', 'public', p_table)" in sql
    for signature in ('"public"."parlant_write"(text, text, text, jsonb)', '"public"."parlant_schema_report"(text[])'):
        assert f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC;" in sql
        assert f'GRANT EXECUTE ON FUNCTION {signature} TO "service_role";' in sql
    assert 'CREATE TABLE IF NOT EXISTS "public"."parlant_write_receipts"' in sql


def test_merge_recomputes_every_mirrored_column_from_the_merged_document() -> None:
    sql = ddl.generate_functions()
    for column in ddl.MIRRORED_COLUMNS:
        assert (
            f"CASE WHEN jsonb_typeof((t.\"data\" || $2) -> '{column}') = 'string' "
            f"THEN (t.\"data\" || $2) ->> '{column}' END"
        ) in sql


def test_upgrade_drops_only_the_old_merge_function_and_fixes_collation_idempotently() -> None:
    sql = ddl_upgrade.generate_upgrade()
    text = uncommented(sql)
    # The seed's GIN indexes are dropped too (tests/unit/test_ddl_indexes.py).
    drops = [line for line in text.splitlines() if "DROP " in line and "DROP INDEX" not in line]
    policy_drops = [line for line in drops if line.startswith("DROP POLICY IF EXISTS ")]
    assert [line for line in drops if line not in policy_drops] == [
        'DROP FUNCTION IF EXISTS "public"."parlant_merge_document"(text, text, jsonb, boolean);'
    ]
    # Only the seed's allow-all policies, one per table, each by its exact name.
    tables = [t for spec in DEFAULT_STORES.values() for t in all_table_names(spec.prefix, spec.collections)]
    assert policy_drops == [
        f'DROP POLICY IF EXISTS "{truncate_identifier("Allow all operations on " + t)}" '
        f'ON "public"."{t}";'
        for t in tables
    ]
    assert "a.attcollation <> v_c" in text
    assert 'ALTER COLUMN %I TYPE text COLLATE "C"' in text
    assert 'ADD COLUMN IF NOT EXISTS "failed_utc" text COLLATE "C";' in text
    assert "CREATE OR REPLACE FUNCTION" in text
    assert "CREATE TABLE IF NOT EXISTS" in text


def test_every_generated_file_says_how_to_regenerate() -> None:
    for content in ddl.generated_files().values():
        assert content.startswith("-- Generated by parlant-supabase-sync")
        assert "python -m parlant_supabase_sync.ddl --write sql/" in content
        assert "parlant-supabase-sync sql" in content


def test_all_sql_holds_the_three_stores_and_the_functions() -> None:
    files = ddl.generated_files()
    assert set(files) == {
        *(f"{spec.prefix}.sql" for spec in PARLANT_STORES.values()),
        "functions.sql",
        "all.sql",
        "every_store.sql",
        "upgrade_from_seed.sql",
        "vectors_1536.sql",
        "vectors_3072.sql",
    }
    assert files["vectors_3072.sql"].count("CREATE OR REPLACE FUNCTION") == files[
        "vectors_1536.sql"
    ].count("CREATE OR REPLACE FUNCTION")  # the vector functions once, not once per store
    assert "halfvec(3072)" in files["vectors_3072.sql"]
    assert "vector(1536)" in files["vectors_1536.sql"]
    assert "parlant_write" in files["all.sql"]
    assert "parlant_write" not in files["parlant_sessions_.sql"]
    assert "parlant_agents_" not in files["all.sql"]
    assert files["every_store.sql"] == ddl.schema_sql(["all"])[0]
    for spec in PARLANT_STORES.values():
        assert f'"public"."{spec.prefix}' in files["every_store.sql"]


def test_custom_prefix_and_schema_are_quoted() -> None:
    sql = ddl.generate_schema(
        {"My_App_": ["sessions", "metadata"]}, "allow-all", schema="it's\"x"
    )
    assert 'CREATE TABLE IF NOT EXISTS "it\'s""x"."My_App_sessions" (' in sql
    assert "WHERE schemaname = 'it''s\"x'" in sql


def test_dollar_quotes_never_clash_with_the_content() -> None:
    sql = ddl_upgrade.generate_upgrade(schema="x$do$y")
    assert "DO $do_$" in sql


def test_long_custom_prefix_gets_distinct_index_names() -> None:
    prefix = "p" * 37
    sql = ddl.generate_schema({prefix: ["variable_tag_associations", "events"]})
    names = list(created_indexes(sql))
    assert len(names) == len(set(names))
    assert all(len(name.encode()) <= MAX_IDENTIFIER_BYTES for name in names)


def test_colliding_prefix_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="shorter"):
        ddl.generate_schema({"p" * 45: ["variable_tag_associations"]})


def test_generator_entry_point_writes_and_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ddl.main(["--check", str(tmp_path)]) == 1
    assert ddl.main(["--write", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ddl.generated_files()
    )
    assert ddl.main(["--check", str(tmp_path)]) == 0
    capsys.readouterr()
    assert ddl.main([]) == 0
    assert capsys.readouterr().out == ddl.generated_files()["all.sql"]


# --- privileges of the API roles (issue #11) ---------------------------------------------------

_API_ROLE_REVOKE = (
    "IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{role}') THEN\n"
    "        REVOKE ALL ON {kind} {target} FROM \"{role}\";\n"
    "    END IF;"
)


def _revokes_everything(sql: str, kind: str, target: str) -> bool:
    return f"REVOKE ALL ON {kind} {target} FROM PUBLIC;" in sql and all(
        _API_ROLE_REVOKE.format(role=role, kind=kind, target=target) in sql
        for role in ("anon", "authenticated")
    )


@pytest.mark.parametrize("anon_policy", ddl.ANON_POLICIES)
def test_every_mode_revokes_everything_from_public_anon_and_authenticated_first(
    anon_policy: ddl.AnonPolicy,
) -> None:
    sql = uncommented(ddl.generate_schema(ddl.default_stores(), anon_policy, include_functions=True))
    for spec in DEFAULT_STORES.values():
        for table in all_table_names(spec.prefix, spec.collections):
            target = f'"public"."{table}"'
            assert _revokes_everything(sql, "TABLE", target), table
            revoke = sql.index(f"REVOKE ALL ON TABLE {target} FROM PUBLIC;")
            for line in sql.splitlines():
                if line.startswith("GRANT ") and f" ON TABLE {target} TO " in line:
                    assert sql.index(line) > revoke, line
    assert _revokes_everything(sql, "TABLE", '"public"."parlant_write_receipts"')
    browser_grants = [
        line for line in sql.splitlines()
        if line.startswith("GRANT ") and not line.endswith(' TO "service_role";')
    ]
    if anon_policy == "none":
        assert browser_grants == []
    elif anon_policy == "per-customer":
        assert browser_grants == [
            'GRANT SELECT ON TABLE "public"."parlant_sessions_" TO "authenticated";',
            'GRANT SELECT ON TABLE "public"."parlant_customers_customer_tag_associations" TO "authenticated";',
        ]
    else:
        assert browser_grants and all(
            line.startswith("GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE ")
            and line.endswith(' TO "anon", "authenticated";')
            for line in browser_grants
        )


def test_no_function_is_executable_by_public_anon_or_authenticated() -> None:
    sql = ddl.generate_functions(schema="it's")
    block = ddl.revoke_function_execute("it's")
    # After every function is created: it revokes from each adapter function found by name or
    # by the adapter's comment, from PUBLIC and from each browser role that exists.
    assert sql.index(block) > sql.rindex("CREATE OR REPLACE FUNCTION")
    assert "WHERE n.nspname = 'it''s')" in block
    assert "LIKE 'parlant-supabase-sync:%'" in block
    assert "'REVOKE ALL ON FUNCTION %s FROM PUBLIC', r.signature" in block
    for role in ("anon", "authenticated"):
        assert (
            f"IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{role}') THEN\n"
            f"            EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %I', r.signature, '{role}');"
        ) in block
    for name in ddl.FUNCTION_NAMES:
        assert f"'{name}'" in block
    grants = [line for line in sql.splitlines() if line.startswith("GRANT ")]
    assert grants and all(line.endswith(' TO "service_role";') for line in grants)


def test_every_generated_function_has_an_empty_search_path() -> None:
    # Supabase Security Advisor lint 0011 (function_search_path_mutable).
    for name, sql in ddl.generated_files().items():
        text = uncommented(sql)
        functions = re.findall(
            r"CREATE OR REPLACE FUNCTION (\S+?)\(.*?\nAS \$", text, flags=re.DOTALL
        )
        if name in ("all.sql", "every_store.sql", "functions.sql", "upgrade_from_seed.sql"):
            assert {f'"public"."{fn}"' for fn in ddl.FUNCTION_NAMES} <= set(functions), name
        for match in re.finditer(
            r"CREATE OR REPLACE FUNCTION .*?\nAS \$", text, flags=re.DOTALL
        ):
            header = match.group(0)
            assert "\nSECURITY INVOKER\nSET search_path = ''\n" in header, header


def test_upgrade_can_keep_the_seed_policies_with_a_warning() -> None:
    assert ddl_upgrade.seed_policy_warning(False) is None
    warning = ddl_upgrade.seed_policy_warning(True)
    assert warning is not None and "anon" in warning and "check" in warning
    sql = ddl_upgrade.generate_upgrade(keep_seed_policies=True)
    text = uncommented(sql)
    assert "DROP POLICY" not in text
    assert warning in sql
    for spec in DEFAULT_STORES.values():
        for table in all_table_names(spec.prefix, spec.collections):
            target = f'"public"."{table}"'
            assert _revokes_everything(text, "TABLE", target)
            assert (
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {target} TO "anon", "authenticated";'
                in text
            )


# --- schemas other than public -----------------------------------------------------------------


def usage_roles(sql: str, schema: str = "parlant") -> list[str]:
    return re.findall(rf'GRANT USAGE ON SCHEMA "{schema}" TO "([a-z_]+)";', sql)


def test_a_non_public_schema_is_created_and_service_role_may_use_it() -> None:
    sql = ddl.generate_schema(ddl.default_stores(), schema="parlant", include_functions=True)
    body = uncommented(sql)
    assert body.count('CREATE SCHEMA IF NOT EXISTS "parlant";') == 1
    assert body.index('CREATE SCHEMA IF NOT EXISTS "parlant";') < body.index("CREATE TABLE")
    # The default mode grants the browser roles nothing, not even the schema.
    assert usage_roles(body) == ["service_role"]
    assert "ALTER DEFAULT PRIVILEGES" not in body
    assert "Project Settings → Data API → Exposed schemas" in sql
    assert "SUPABASE_SCHEMA=parlant" in sql


@pytest.mark.parametrize(
    ("anon_policy", "roles"),
    [
        ("none", ["service_role"]),
        ("per-customer", ["service_role", "authenticated"]),
        ("allow-all", ["service_role", "anon", "authenticated"]),
    ],
)
def test_schema_usage_goes_to_the_roles_the_anon_policy_lets_in(
    anon_policy: ddl.AnonPolicy, roles: list[str]
) -> None:
    sql = ddl.generate_schema(ddl.default_stores(), anon_policy, schema="parlant")
    assert usage_roles(uncommented(sql)) == roles


def test_public_gets_no_schema_statements() -> None:
    for sql in (ALL_SQL, ddl.generate_functions(), ddl_upgrade.generate_upgrade()):
        assert "CREATE SCHEMA" not in sql and "GRANT USAGE ON SCHEMA" not in sql


def test_functions_and_upgrade_alone_set_the_schema_up_too() -> None:
    assert usage_roles(ddl.generate_functions(schema="parlant")) == ["service_role"]
    assert usage_roles(ddl_upgrade.generate_upgrade(schema="parlant")) == ["service_role"]
    kept = ddl_upgrade.generate_upgrade(schema="parlant", keep_seed_policies=True)
    assert usage_roles(kept) == ["service_role", "anon", "authenticated"]


def test_an_odd_schema_name_cannot_leave_its_comment() -> None:
    schema = "x\nDROP TABLE t; --"
    sql = ddl.generate_schema({"p_": ["docs"]}, schema=schema)
    # Comments show it as repr; everywhere else it is inside a quoted identifier or literal.
    assert f"add {schema!r} under" in sql
    starts = sql.count("\nDROP TABLE t")
    assert starts == sql.count('"x\nDROP TABLE t') + sql.count("'x\nDROP TABLE t") > 0


# --- schema_sql: what `parlant-supabase-sync sql` prints ------------------------------------------


def test_schema_sql_is_the_generator_for_each_mode() -> None:
    assert ddl.schema_sql() == (ddl.generated_files()["all.sql"], [])
    stores = {"acme_sessions_": DEFAULT_STORES["sessions"].collections}
    text, _ = ddl.schema_sql(["acme_sessions_"], schema="app")
    assert text == ddl.generate_schema(stores, schema="app", include_functions=True)
    assert ddl.schema_sql(functions_only=True) == (ddl.generate_functions(), [])
    text, warnings = ddl.schema_sql(["sessions"], upgrade=True, keep_seed_policies=True)
    stores = {"parlant_sessions_": DEFAULT_STORES["sessions"].collections}
    assert text == ddl_upgrade.generate_upgrade(stores, keep_seed_policies=True)
    assert warnings == [ddl_upgrade.seed_policy_warning(True)]
    _, warnings = ddl.schema_sql(anon_policy="allow-all")
    assert warnings == [ddl.anon_policy_warning("allow-all")]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keep_seed_policies": True}, "--keep-seed-policies applies only to --upgrade"),
        ({"upgrade": True, "anon_policy": "per-customer"}, "sql --anon-policy per-customer`"),
        ({"anon_policy": "open"}, "unknown anon policy 'open'"),
        ({"prefixes": ["acme_"]}, "cannot tell which Parlant store prefix 'acme_' is for"),
        ({"prefixes": ["sesions"]}, "unknown store 'sesions'"),
    ],
)
def test_schema_sql_refuses_what_it_cannot_generate(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        ddl.schema_sql(**options)  # type: ignore[arg-type]
    assert message in str(refused.value) and "\n" not in str(refused.value)
