"""SQL text primitives for the generators: the one quoting function per kind of token.

Every identifier in generated SQL goes through `quote_ident` and every string literal through
`quote_literal`; nothing else builds quoted SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import ConfigurationError
from .naming import MAX_IDENTIFIER_BYTES

__all__ = [
    "RELOAD_SCHEMA_CACHE",
    "columns_signature",
    "dollar_quote",
    "indent",
    "mirror",
    "qualified",
    "quote_ident",
    "quote_literal",
    "text_array",
]


def quote_ident(name: str) -> str:
    """Quote an SQL identifier: double quotes, inner quotes doubled (never cut silently)."""
    if not name or "\x00" in name:
        raise ConfigurationError(f"invalid SQL identifier {name!r}")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ConfigurationError(
            f"SQL identifier {name!r} is longer than {MAX_IDENTIFIER_BYTES} bytes; PostgreSQL "
            "would cut it, so cut it with naming.truncate_identifier first"
        )
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote an SQL string literal (standard_conforming_strings: only quotes are doubled)."""
    if "\x00" in value:
        raise ConfigurationError("SQL string literals cannot contain NUL characters")
    return "'" + value.replace("'", "''") + "'"


def dollar_quote(body: str, tag: str) -> str:
    while f"${tag}$" in body:
        tag += "_"
    return f"${tag}${body}${tag}$"


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def mirror(column: str, document: str) -> str:
    """`column`'s value derived from the jsonb expression `document`: the string, else NULL."""
    key = quote_literal(column)
    return (
        f"CASE WHEN jsonb_typeof(({document}) -> {key}) = 'string' THEN ({document}) ->> {key} END"
    )


def text_array(values: Iterable[str]) -> str:
    return "ARRAY[" + ", ".join(quote_literal(value) for value in values) + "]::text[]"


def columns_signature(relid: str) -> str:
    """Sorted `name type` of a relation's live columns, to compare with a known shape."""
    return (
        "(SELECT array_agg(a.attname::text || ' ' || pg_catalog.format_type(a.atttypid, NULL) "
        f"ORDER BY a.attname::text COLLATE {quote_ident('C')}) "
        f"FROM pg_catalog.pg_attribute AS a WHERE a.attrelid = {relid} "
        "AND a.attnum > 0 AND NOT a.attisdropped)"
    )


def indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.split("\n"))


# PostgREST answers from a schema cache: Supabase reloads it on DDL through an event trigger,
# plain PostgREST only on this notification (harmless where nobody listens).
RELOAD_SCHEMA_CACHE = (
    "-- PostgREST serves from a cached schema: ask it to reload (Supabase also does on DDL).\n"
    "NOTIFY pgrst, 'reload schema';"
)
