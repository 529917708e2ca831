"""Hostile collection names never reach the network: each is refused before any request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from security_helpers import install

from parlant_supabase_sync.api import connect
from parlant_supabase_sync.core import SyncDocumentDatabase
from parlant_supabase_sync.settings import SupabaseSettings

if TYPE_CHECKING:
    from parlant_supabase_sync.local.stack import LocalSupabase

HOSTILE = [
    "_/../parlant_customers_",
    "x/../../../auth/v1/admin/users",
    "events%2F..%2Fparlant_customers_",
    "events%2f",
    "events\x00",
    "\x00",
    "../parlant_write_receipts",
    "events?select=*",
    "events#",
    "rpc/parlant_write",
]


@pytest.fixture(scope="module")
def stack(security_stack: LocalSupabase) -> Iterator[LocalSupabase]:
    install(security_stack, "none")
    yield security_stack


def _database(stack: LocalSupabase) -> SyncDocumentDatabase:
    return SyncDocumentDatabase(
        SupabaseSettings(url=stack.url, key=stack.secret_key), table_prefix="parlant_sessions_"
    )


def _loader(document: dict[str, Any]) -> dict[str, Any]:
    return document


CALLS: dict[str, Callable[[LocalSupabase, str], object]] = {
    "delete_collection": lambda stack, name: _database(stack).delete_collection(name),
    "get_or_create_collection": lambda stack, name: _database(stack).get_or_create_collection(
        name, dict, _loader
    ),
    "connect().store().collection().find": lambda stack, name: connect(
        url=stack.url, key=stack.secret_key
    ).store("sessions").collection(name).find({}),
}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("name", HOSTILE, ids=[repr(n) for n in HOSTILE])
def test_a_hostile_collection_name_raises_before_any_request(
    stack: LocalSupabase, call: str, name: str
) -> None:
    before = stack.requests.count()
    state = stack.query("SELECT count(*) FROM public.parlant_customers_")
    with pytest.raises(ValueError) as refused:
        CALLS[call](stack, name)
    assert "\n" not in str(refused.value)
    assert stack.requests.count() == before
    assert stack.query("SELECT count(*) FROM public.parlant_customers_") == state
