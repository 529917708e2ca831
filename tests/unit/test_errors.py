"""Error hierarchy and the mapping from PostgREST/gateway responses and httpx failures."""

from __future__ import annotations

import pickle
from typing import Any

import httpx
import pytest

from parlant_supabase_sync.errors import (
    AuthenticationError,
    ConfigurationError,
    DuplicateDocument,
    FunctionMissing,
    InvalidDocument,
    PermissionDenied,
    RequestError,
    SchemaMissing,
    SchemaNotExposed,
    SupabaseSyncError,
    TableMissing,
    TransientError,
    UnsupportedFilter,
    scrub,
    sql_command,
)
from parlant_supabase_sync.wire import from_api_error, from_transport_error

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXZhbHVl"
SECRET = "sb_secret_AbCdEfGhIjKlMnOpQrStUv_12345678"


def body(
    code: str | None, message: str, details: str | None = None, hint: str | None = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details, "hint": hint}


@pytest.mark.parametrize(
    ("response", "status", "expected"),
    [
        (
            body(
                "PGRST205",
                "Could not find the table 'public.parlant_sessions_events' in the schema cache",
            ),
            404,
            TableMissing,
        ),
        (body("42P01", 'relation "public.x" does not exist'), 404, TableMissing),
        (
            body(
                "PGRST202",
                "Could not find the function public.parlant_merge_document(p_id, p_params) in the schema cache",
            ),
            404,
            FunctionMissing,
        ),
        (
            body(
                "23505",
                'duplicate key value violates unique constraint "t_pkey"',
                "Key (id)=(a) already exists.",
            ),
            409,
            DuplicateDocument,
        ),
        (
            body("42501", "permission denied for table parlant_sessions_"),
            403,
            PermissionDenied,
        ),
        (
            body("42501", 'new row violates row-level security policy for table "x"'),
            401,
            PermissionDenied,
        ),
        (body("PGRST301", "Expected 3 parts in JWT; got 1"), 401, AuthenticationError),
        (body("PGRST302", "Anonymous access is disabled"), 401, AuthenticationError),
        (body("PGRST303", "JWT expired"), 401, AuthenticationError),
        (
            {
                "message": "Invalid API key",
                "hint": "Double check your Supabase `anon` or `service_role` API key.",
            },
            401,
            AuthenticationError,
        ),
        ({"message": "No API key found in request"}, 401, AuthenticationError),
        ({"message": "Legacy API keys are disabled"}, 401, AuthenticationError),
        (None, 401, AuthenticationError),
        (None, 502, TransientError),
        (None, 503, TransientError),
        (None, 504, TransientError),
        (None, 429, TransientError),
        (body("PGRST000", "Database connection error"), 503, TransientError),
        (
            body("PGRST003", "Timed out acquiring connection from connection pool."),
            504,
            TransientError,
        ),
        (body("08006", "connection failure"), 503, TransientError),
        (
            body("57P01", "terminating connection due to administrator command"),
            503,
            TransientError,
        ),
        (body("40001", "could not serialize access"), 500, TransientError),
        (body("40P01", "deadlock detected"), 500, TransientError),
        (body("22P05", "unsupported Unicode escape sequence"), 400, InvalidDocument),
        (
            body(
                "P0001",
                "parlant-supabase-sync: public.x is not a parlant-supabase-sync document table",
            ),
            400,
            RequestError,
        ),
        (body("PGRST100", '"failed to parse filter"'), 400, RequestError),
        (body("23502", 'null value in column "id"'), 400, RequestError),
        (None, 500, RequestError),
    ],
)
def test_from_api_error_maps_codes_to_meaning(
    response: dict[str, Any] | None, status: int, expected: type[SupabaseSyncError]
) -> None:
    error = from_api_error(response, status, table="parlant_sessions_")
    assert type(error) is expected
    assert error.status == status
    if response is not None:
        assert error.code == response.get("code")


def test_table_missing_lists_the_table_and_the_command() -> None:
    error = from_api_error(
        body(
            "PGRST205",
            "Could not find the table 'public.parlant_sessions_events' in the schema cache",
        ),
        404,
    )
    assert isinstance(error, TableMissing) and isinstance(error, SchemaMissing)
    assert error.tables == ("parlant_sessions_events",)
    message = str(error)
    assert "parlant_sessions_events" in message
    assert (
        "parlant-supabase-sync sql --prefix parlant_sessions_ > schema.sql" in message
    )
    assert "SQL editor" in message


def test_function_missing_names_the_function() -> None:
    error = from_api_error(
        body(
            "PGRST202",
            "Could not find the function public.parlant_merge_document(p_id) in the schema cache",
        ),
        404,
    )
    assert isinstance(error, FunctionMissing)
    assert error.functions == ("parlant_merge_document",)
    assert "parlant_merge_document" in str(error)
    assert "parlant-supabase-sync sql > schema.sql" in str(error)


def test_schema_missing_lists_everything_missing() -> None:
    error = SchemaMissing(
        tables=["a_t", "b_t"],
        functions=["parlant_schema_report"],
        prefixes=["a_", "b_"],
    )
    message = str(error)
    for name in ("a_t", "b_t", "parlant_schema_report", "--prefix a_ --prefix b_"):
        assert name in message


def test_our_function_messages_pass_through() -> None:
    message = (
        "parlant-supabase-sync: public.x is not a parlant-supabase-sync document table"
    )
    error = from_api_error(body("P0001", message), 400)
    assert str(error) == message


def test_permission_denied_says_what_to_do() -> None:
    error = from_api_error(
        body("42501", "permission denied for table t"), 403, table="t"
    )
    assert "sb_secret_" in str(error) and "service_role" in str(error)
    assert "policy" in str(error)


def test_authentication_error_names_the_variable() -> None:
    error = from_api_error({"message": "Invalid API key"}, 401)
    assert "SUPABASE_KEY" in str(error)
    legacy = from_api_error({"message": "Legacy API keys are disabled"}, 401)
    assert "sb_secret_" in str(legacy)


def test_details_and_hint_are_kept() -> None:
    error = from_api_error(
        body("23505", "dup", "Key (id)=(a) already exists.", "h"), 409
    )
    assert (error.details, error.hint) == ("Key (id)=(a) already exists.", "h")


def test_server_text_is_scrubbed_of_credentials() -> None:
    error = from_api_error(
        body(
            "PGRST301",
            f"bad token {JWT}",
            f"apikey {SECRET}",
            f"Authorization: Bearer {JWT}",
        ),
        401,
    )
    rendered = f"{error} {error!r} {error.details} {error.hint}"
    assert "eyJ" not in rendered
    assert "AbCdEfGhIj" not in rendered


@pytest.mark.parametrize(
    "text",
    [
        JWT,
        SECRET,
        "sb_publishable_abc-DEF_123",
        "sbp_0123456789abcdef",
        "Bearer opaque-token-value",
    ],
)
def test_scrub_removes_credentials(text: str) -> None:
    cleaned = scrub(f"before {text} after")
    assert text not in cleaned
    assert cleaned.startswith("before ") and cleaned.endswith(" after")


def test_errors_pickle_with_their_fields() -> None:
    errors: list[SupabaseSyncError] = [
        from_api_error(body("23505", "dup", "d", "h"), 409),
        TableMissing(tables=["t"], prefixes=["p_"], code="PGRST205", status=404),
        TransientError("x", maybe_applied=False, status=503),
        ConfigurationError("set SUPABASE_URL"),
    ]
    for error in errors:
        clone = pickle.loads(pickle.dumps(error))
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert clone.__dict__ == error.__dict__


def test_value_error_family() -> None:
    value_errors: list[type[SupabaseSyncError]] = [
        ConfigurationError,
        DuplicateDocument,
        UnsupportedFilter,
        InvalidDocument,
    ]
    others: list[type[SupabaseSyncError]] = [
        PermissionDenied,
        AuthenticationError,
        TransientError,
        RequestError,
        SchemaMissing,
    ]
    assert all(issubclass(cls, ValueError) for cls in value_errors)
    assert not any(issubclass(cls, ValueError) for cls in others)


def request() -> httpx.Request:
    return httpx.Request(
        "POST", "http://127.0.0.1:9/rest/v1/rpc/parlant_merge_document?apikey=x"
    )


def test_connect_failures_are_transient_and_were_not_applied() -> None:
    for exc in (
        httpx.ConnectError("refused", request=request()),
        httpx.ConnectTimeout("slow", request=request()),
        httpx.PoolTimeout("busy", request=request()),
    ):
        error = from_transport_error(exc)
        assert isinstance(error, TransientError)
        assert error.maybe_applied is False
        assert "apikey" not in str(error)


def test_failures_after_sending_are_transient_but_may_have_been_applied() -> None:
    for exc in (
        httpx.ReadTimeout("slow", request=request()),
        httpx.ReadError("reset", request=request()),
        httpx.RemoteProtocolError("closed", request=request()),
    ):
        error = from_transport_error(exc)
        assert isinstance(error, TransientError)
        assert error.maybe_applied is True


def test_unsupported_protocol_is_a_configuration_error() -> None:
    error = from_transport_error(httpx.UnsupportedProtocol("no scheme"))
    assert isinstance(error, ConfigurationError)
    assert "SUPABASE_URL" in str(error)


def test_only_codeless_gateway_failures_may_have_been_applied() -> None:
    assert from_api_error(None, 504).maybe_applied is True  # type: ignore[attr-defined]
    rolled_back = from_api_error(body("40001", "could not serialize access"), 500)
    assert rolled_back.maybe_applied is False  # type: ignore[attr-defined]
    assert from_api_error(body("PGRST003", "pool timeout"), 504).maybe_applied is False  # type: ignore[attr-defined]


def test_sql_command_names_prefixes_schema_and_upgrade() -> None:
    assert sql_command() == "parlant-supabase-sync sql > schema.sql"
    assert sql_command(schema="public") == "parlant-supabase-sync sql > schema.sql"
    assert (
        sql_command(["a_"], schema="parlant", upgrade=True)
        == "parlant-supabase-sync sql --prefix a_ --schema parlant --upgrade > upgrade.sql"
    )


def test_schema_missing_with_outdated_objects_advises_the_upgrade() -> None:
    error = SchemaMissing(tables=["t"], outdated=["parlant_merge_document"], schema="parlant")
    assert error.outdated == ("parlant_merge_document",)
    assert error.command == "parlant-supabase-sync sql --schema parlant --upgrade > upgrade.sql"
    message = str(error)
    assert error.command in message and "parlant_merge_document" in message
    assert 'psql "$DATABASE_URL" -f upgrade.sql' in message and "SQL editor" in message


def test_schema_not_exposed_pickles_with_its_schema() -> None:
    error = SchemaNotExposed("schema 'x' is not exposed", schema="x", code="PGRST106", status=406)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is SchemaNotExposed and clone.__dict__ == error.__dict__
    assert isinstance(error, ConfigurationError)
