"""Make a fresh PostgreSQL database look like a Supabase project's (run as superuser).

Roles as in supabase/postgres's initial schema: `anon`, `authenticated` (NOLOGIN NOINHERIT),
`service_role` (NOLOGIN NOINHERIT BYPASSRLS) and the login role `authenticator` that PostgREST
connects as and that may `SET ROLE` to each of them; grants and default privileges in `public`;
per-role statement timeouts; and `auth.uid()` / `auth.role()` / `auth.jwt()` reading the
`request.jwt.claims` setting, so policies such as `USING (auth.uid()::text = customer_id)` work.

Every statement is idempotent: running the bootstrap on a reused cluster is harmless.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

__all__ = ["API_ROLES", "AUTHENTICATOR", "bootstrap", "bootstrap_sql"]

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


def bootstrap_sql(*, default_grants: bool = True) -> str:
    """The whole bootstrap script (one transaction's worth of idempotent statements)."""
    return _ROLES + (_GRANTS if default_grants else _NO_DEFAULT_GRANTS) + _AUTH_SCHEMA


def bootstrap(conn: psycopg.Connection[Any], *, default_grants: bool = True) -> None:
    """Run the bootstrap on `conn` (a superuser connection to the project database) and commit.

    `default_grants=False` mimics projects created after Supabase stopped auto-granting new
    tables in `public` to the API roles.
    """
    # Concurrent bootstraps (two processes on one fresh cluster) would race on CREATE ROLE;
    # an advisory lock serialises them.
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('parlant_supabase_sync.bootstrap'))")
        conn.execute(bootstrap_sql(default_grants=default_grants).encode())
