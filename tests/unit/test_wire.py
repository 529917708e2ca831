"""wire.py: strict decoding of 2xx bodies and the mapping of every other answer."""

from __future__ import annotations

import httpx
import pytest

from parlant_supabase_sync.errors import (
    ConfigurationError,
    InvalidResponse,
    RequestTooLarge,
    SchemaNotExposed,
    TableMissing,
    TransientError,
)
from parlant_supabase_sync.retry import is_retryable
from parlant_supabase_sync.wire import (
    content_range_count,
    decode_json,
    decode_rows,
    from_answer,
    from_invalid_url,
)


def answer(
    status: int,
    content: bytes,
    *,
    method: str = "GET",
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    request = httpx.Request(method, "http://127.0.0.1:9/rest/v1/t?apikey=sb_secret_xyz")
    return httpx.Response(
        status,
        content=content,
        headers={"content-type": content_type, **(headers or {})},
        request=request,
    )


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"<html><head><title>Captive portal</title></head></html>",
        b'[{"id": "a"}, {"id": "b"',  # cut short, correctly framed
        b'{"id": "a"}',  # an object where rows are expected
        b"[1, 2]",  # rows that are not objects
        b"3",
    ],
)
def test_a_2xx_read_whose_body_is_not_rows_is_an_invalid_response_never_empty(
    content: bytes,
) -> None:
    with pytest.raises(InvalidResponse) as caught:
        decode_rows(answer(200, content), table="t")
    assert is_retryable(caught.value)
    assert caught.value.status == 200
    assert "sb_secret" not in str(caught.value)


def test_rows_and_head_answers_decode() -> None:
    assert decode_rows(answer(200, b'[{"id": "a"}]')) == [{"id": "a"}]
    assert decode_rows(answer(200, b"[]")) == []
    assert decode_rows(answer(200, b"", method="HEAD")) == []


def test_json_bodies_must_be_json() -> None:
    assert decode_json(answer(200, b'{"inserted": 1}')) == {"inserted": 1}
    with pytest.raises(InvalidResponse):
        decode_json(answer(200, b'{"inserted": '))
    with pytest.raises(InvalidResponse):
        decode_json(answer(201, b""))


def test_a_requested_count_must_be_in_content_range() -> None:
    assert content_range_count(answer(200, b"[]", headers={"content-range": "0-0/42"})) == 42
    assert content_range_count(answer(200, b"[]", headers={"content-range": "*/0"})) == 0
    for value in ("0-0/*", "", "garbage"):
        with pytest.raises(InvalidResponse):
            content_range_count(answer(200, b"[]", headers={"content-range": value}))


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_pages_in_html_are_transient_with_a_one_line_summary(status: int) -> None:
    page = b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>"
    error = from_answer(answer(status, page, content_type="text/html"))
    assert isinstance(error, TransientError) and is_retryable(error)
    assert "\n" not in str(error) and "Bad Gateway" in str(error)


def test_414_and_invalid_urls_are_request_too_large() -> None:
    error = from_answer(answer(414, b"<html><title>414 Request-URI Too Large</title></html>"))
    assert isinstance(error, RequestTooLarge) and error.status == 414
    assert isinstance(from_invalid_url(httpx.InvalidURL("URL too long")), RequestTooLarge)


def test_postgrest_12_answers_a_write_into_a_missing_table_with_404_and_an_empty_object() -> None:
    error = from_answer(answer(404, b"{}", method="POST"), table="parlant_sessions_")
    assert isinstance(error, TableMissing)
    assert error.tables == ("parlant_sessions_",)


def test_an_unexposed_schema_keeps_postgrest_hint_and_says_what_to_change() -> None:
    body = (
        b'{"code":"PGRST106","details":null,"hint":"Only the following schemas are exposed: '
        b'public, graphql_public","message":"Invalid schema: parlant"}'
    )
    error = from_answer(answer(406, body))
    assert isinstance(error, SchemaNotExposed) and isinstance(error, ConfigurationError)
    assert error.schema == "parlant" and error.code == "PGRST106" and error.status == 406
    message = str(error)
    assert "\n" not in message
    assert "Only the following schemas are exposed: public, graphql_public" in message
    assert "Project Settings → Data API → Exposed schemas" in message
    assert "SUPABASE_SCHEMA" in message
    assert not is_retryable(error)


def test_an_unexposed_schema_from_an_older_postgrest_is_recognised() -> None:
    body = b'{"code":"PGRST106","message":"The schema must be one of the following: public"}'
    error = from_answer(answer(406, body))
    assert isinstance(error, SchemaNotExposed) and error.schema is None
    assert "The schema must be one of the following: public" in str(error)
    assert "Exposed schemas" in str(error)
