"""SQLSTATE → HTTP mapping and the error body shape of the stand-in (postgrest-protocol.md §12)."""

from __future__ import annotations

import json

import pytest

from parlant_supabase_sync.local.errors import PgrstError, sqlstate_status


@pytest.mark.parametrize(
    ("sqlstate", "message", "status"),
    [
        ("08006", "connection failure", 503),
        ("09000", "x", 500),
        ("0L000", "x", 403),
        ("0P000", "x", 403),
        ("21000", "UPDATE requires a WHERE clause", 400),
        ("21000", "more than one row returned by a subquery used as an expression", 500),
        ("22023", 'role "ghost" does not exist', 401),
        ("22023", "invalid value", 400),
        ("22P02", 'invalid input syntax for type integer: "abc"', 400),
        ("23502", "null value", 400),
        ("23503", "fk", 409),
        ("23505", "dup", 409),
        ("25006", "cannot execute INSERT in a read-only transaction", 405),
        ("25P02", "x", 500),
        ("28000", "x", 403),
        ("2D000", "x", 500),
        ("38000", "x", 500),
        ("39000", "x", 500),
        ("3B000", "x", 500),
        ("40001", "x", 500),
        ("40P01", "x", 500),
        ("42703", "column docs.foo does not exist", 400),
        ("42883", "operator does not exist: jsonb ~~ unknown", 404),
        ("42883", "function xmlagg(integer) does not exist", 406),
        ("42P01", "x", 404),
        ("42P17", "x", 500),
        ("53400", "x", 500),
        ("53300", "x", 503),
        ("54001", "x", 500),
        ("55000", "x", 500),
        ("57P01", "x", 503),
        ("57014", "canceling statement due to statement timeout", 500),
        ("58000", "x", 500),
        ("F0000", "x", 500),
        ("HV000", "x", 500),
        ("P0001", "x", 400),
        ("P0004", "x", 500),
        ("XX000", "x", 500),
        ("PT402", "x", 402),
        ("PTabc", "x", 500),
    ],
)
def test_sqlstate_maps_to_postgrest_status(sqlstate: str, message: str, status: int) -> None:
    assert sqlstate_status(sqlstate, message, is_anon=False) == status


def test_insufficient_privilege_depends_on_the_anon_role() -> None:
    assert sqlstate_status("42501", "permission denied for table t", is_anon=True) == 401
    assert sqlstate_status("42501", "permission denied for table t", is_anon=False) == 403


def test_error_body_has_every_key_in_postgrest_order() -> None:
    err = PgrstError(404, "PGRST205", "Could not find the table 'public.x' in the schema cache")
    assert err.body() == (
        b'{"code":"PGRST205","details":null,"hint":null,'
        b'"message":"Could not find the table \'public.x\' in the schema cache"}'
    )
    assert json.loads(err.body())["details"] is None


def test_error_headers() -> None:
    headers = dict(PgrstError(401, "42501", "permission denied").response_headers())
    assert headers == {
        "Content-Type": "application/json; charset=utf-8",
        "Proxy-Status": "PostgREST; error=42501",
        "WWW-Authenticate": "Bearer",
    }
    custom = PgrstError(401, "PGRST301", "bad", headers=[("WWW-Authenticate", 'Bearer error="invalid_token"')])
    assert [v for k, v in custom.response_headers() if k == "WWW-Authenticate"] == ['Bearer error="invalid_token"']
