"""Make a fresh PostgreSQL database look like a Supabase project's (run as superuser).

Roles as in supabase/postgres's initial schema: `anon`, `authenticated` (NOLOGIN NOINHERIT),
`service_role` (NOLOGIN NOINHERIT BYPASSRLS) and the login role `authenticator` that PostgREST
connects as and that may `SET ROLE` to each of them; grants and default privileges in `public`;
per-role statement timeouts; and `auth.uid()` / `auth.role()` / `auth.jwt()` reading the
`request.jwt.claims` setting, so policies such as `USING (auth.uid()::text = customer_id)` work.

Like every Supabase project it installs the event triggers `pgrst_ddl_watch` (ddl_command_end)
and `pgrst_drop_watch` (sql_drop) with their functions in the `extensions` schema, which send
`NOTIFY pgrst, 'reload schema'` after DDL, so the gateway's schema cache reloads by itself
(supabase/postgres `migrations/db/migrations/20220126121436_finer-postgrest-triggers.sql` and
`20220321174452_fix-postgrest-alter-type-event-trigger.sql`). `ddl_watch=False` drops them:
plain PostgREST, where only an explicit NOTIFY reloads.

Every statement is idempotent: running the bootstrap on a reused cluster is harmless.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

__all__ = ["API_ROLES", "AUTHENTICATOR", "DDL_WATCH_TRIGGERS", "bootstrap", "bootstrap_sql"]

#: Roles a request may run as (anonymous, signed-in user, secret/service key).
API_ROLES = ("anon", "authenticated", "service_role")
#: The login role the gateway connects as.
AUTHENTICATOR = "authenticator"

_ROLES = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticator') THEN
    CREATE ROLE authenticator LOGIN NOINHERIT;
  END IF;
END
$$;
ALTER ROLE anon NOLOGIN NOINHERIT;
ALTER ROLE authenticated NOLOGIN NOINHERIT;
ALTER ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
ALTER ROLE authenticator LOGIN NOINHERIT;
GRANT anon, authenticated, service_role TO authenticator;
ALTER ROLE anon SET statement_timeout = '3s';
ALTER ROLE authenticated SET statement_timeout = '8s';
ALTER ROLE authenticator SET statement_timeout = '8s';
"""

_GRANTS = """
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
"""

# Newer Supabase projects no longer auto-grant tables in `public` (see shared notes); this
# undoes the default privileges above so that behaviour can be tested too.
_NO_DEFAULT_GRANTS = """
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON FUNCTIONS FROM anon, authenticated, service_role;
"""

# `request.jwt.claim.*` are the pre-v9 PostgREST settings; Supabase's helpers still fall back
# to them, and so do these.
_AUTH_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;

CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
  )::uuid
$$;

CREATE OR REPLACE FUNCTION auth.role() RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
  )::text
$$;

GRANT EXECUTE ON FUNCTION auth.jwt(), auth.uid(), auth.role() TO anon, authenticated, service_role;
"""


#: The event triggers Supabase installs to reload PostgREST's schema cache after DDL.
DDL_WATCH_TRIGGERS = ("pgrst_ddl_watch", "pgrst_drop_watch")

# The functions as Supabase defines them (the command tags and object types listed are theirs,
# including ALTER TYPE from the 2022-03-21 fix); GRANT, REVOKE and CREATE INDEX notify nothing.
_DDL_WATCH = """
CREATE SCHEMA IF NOT EXISTS extensions;

CREATE OR REPLACE FUNCTION extensions.pgrst_ddl_watch() RETURNS event_trigger
LANGUAGE plpgsql
AS $$
DECLARE
  cmd record;
BEGIN
  FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands()
  LOOP
    IF cmd.command_tag IN (
      'CREATE SCHEMA', 'ALTER SCHEMA',
      'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE',
      'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE',
      'CREATE VIEW', 'ALTER VIEW',
      'CREATE MATERIALIZED VIEW', 'ALTER MATERIALIZED VIEW',
      'CREATE FUNCTION', 'ALTER FUNCTION',
      'CREATE TRIGGER',
      'CREATE TYPE', 'ALTER TYPE',
      'CREATE RULE',
      'COMMENT')
      -- objects created in pg_temp notify nothing
      AND cmd.schema_name IS DISTINCT FROM 'pg_temp'
    THEN
      NOTIFY pgrst, 'reload schema';
    END IF;
  END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION extensions.pgrst_drop_watch() RETURNS event_trigger
LANGUAGE plpgsql
AS $$
DECLARE
  obj record;
BEGIN
  FOR obj IN SELECT * FROM pg_event_trigger_dropped_objects()
  LOOP
    IF obj.object_type IN (
      'schema', 'table', 'foreign table', 'view', 'materialized view',
      'function', 'trigger', 'type', 'rule')
      AND obj.is_temporary IS false
    THEN
      NOTIFY pgrst, 'reload schema';
    END IF;
  END LOOP;
END;
$$;

DROP EVENT TRIGGER IF EXISTS pgrst_ddl_watch;
CREATE EVENT TRIGGER pgrst_ddl_watch ON ddl_command_end
  EXECUTE FUNCTION extensions.pgrst_ddl_watch();

DROP EVENT TRIGGER IF EXISTS pgrst_drop_watch;
CREATE EVENT TRIGGER pgrst_drop_watch ON sql_drop
  EXECUTE FUNCTION extensions.pgrst_drop_watch();
"""

_NO_DDL_WATCH = """
DROP EVENT TRIGGER IF EXISTS pgrst_ddl_watch;
DROP EVENT TRIGGER IF EXISTS pgrst_drop_watch;
"""


# As Supabase does: extensions live in schema `extensions`, which is on the roles' search_path.
_PGVECTOR = """
CREATE SCHEMA IF NOT EXISTS extensions;
GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role;
CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA extensions;
"""

_SEARCH_PATH = """
ALTER ROLE anon SET search_path = "$user", public, extensions;
ALTER ROLE authenticated SET search_path = "$user", public, extensions;
ALTER ROLE service_role SET search_path = "$user", public, extensions;
ALTER ROLE authenticator SET search_path = "$user", public, extensions;
ALTER ROLE postgres SET search_path = "$user", public, extensions;
"""


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _schemas_sql(schemas: tuple[str, ...]) -> str:
    # Exposing a schema on Supabase does not grant anything in it: only `public` has grants.
    return "".join(
        f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(s)};\n" for s in schemas if s != "public"
    )


def bootstrap_sql(
    *,
    default_grants: bool = True,
    ddl_watch: bool = True,
    schemas: tuple[str, ...] = ("public",),
    pgvector: bool = False,
) -> str:
    """The whole bootstrap script (one transaction's worth of idempotent statements).

    The authenticator's password is set separately (`bootstrap(authenticator_password=…)`).
    """
    return (
        _ROLES
        + (_GRANTS if default_grants else _NO_DEFAULT_GRANTS)
        + _AUTH_SCHEMA
        + _schemas_sql(schemas)
        + (_DDL_WATCH if ddl_watch else _NO_DDL_WATCH)
        + ((_PGVECTOR + _SEARCH_PATH) if pgvector else "")
    )


def bootstrap(
    conn: psycopg.Connection[Any],
    *,
    default_grants: bool = True,
    authenticator_password: str | None = None,
    ddl_watch: bool = True,
    schemas: tuple[str, ...] = ("public",),
    pgvector: bool = False,
) -> None:
    """Run the bootstrap on `conn` (a superuser connection to the project database) and commit.

    `default_grants=False` mimics projects created after Supabase stopped auto-granting new
    tables in `public` to the API roles. `authenticator_password` is set as the login role's
    password (the server only accepts password authentication; None leaves it unchanged).
    `ddl_watch` installs (True) or removes (False) Supabase's schema-reload event triggers.
    `schemas` are created if missing (exposed schemas other than `public` get no grants, as on
    Supabase).
    """
    from psycopg import sql

    script = bootstrap_sql(
        default_grants=default_grants, ddl_watch=ddl_watch, schemas=schemas, pgvector=pgvector
    )
    # Concurrent bootstraps (two processes on one fresh cluster) would race on CREATE ROLE;
    # an advisory lock serialises them.
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('parlant_supabase_sync.bootstrap'))")
        conn.execute(script.encode())
        if authenticator_password is not None:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(AUTHENTICATOR), sql.Literal(authenticator_password)
                )
            )
