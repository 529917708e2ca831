"""A ``parlant-server`` module putting every Parlant store and the embedding cache on Supabase.

::

    SUPABASE_URL=... SUPABASE_KEY=... parlant-server run --module parlant_supabase_sync.parlant_module

(or ``modules = ["parlant_supabase_sync.parlant_module"]`` in the ``[parlant]`` table of
``parlant.toml``). The settings come from the environment like everywhere else
(``SUPABASE_URL``, ``SUPABASE_KEY``, ``SUPABASE_SCHEMA``...). Parlant calls the three hooks below:
``configure_module`` opens ``supabase_stores(every_store=True)`` (one schema check of every
table first: a missing one stops the server with the one command to run, before anything is
written) and defines the stores, so Parlant builds no JSON-file store of its own;
``initialize_module`` enters the stores that need the NLP service (the service registry, the
glossary, canned responses, journeys and capabilities) and puts the embedding cache back
(Parlant replaces it in between); ``shutdown_module`` closes everything.

The stores are opened with ``allow_migration=False`` (Parlant's own default; a module cannot see
``--migrate``): data of an older Parlant store version is refused with Parlant's message.
For the SDK use :func:`parlant_supabase_sync.wiring.supabase_stores` and ``server_options()``.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from parlant_supabase_sync.wiring import SupabaseStores, supabase_stores

if TYPE_CHECKING:
    from lagom import Container

__all__ = ["configure_module", "initialize_module", "shutdown_module"]

# The open stores between configure_module and shutdown_module (one server per process).
_open: list[tuple[AsyncExitStack, SupabaseStores]] = []


async def configure_module(container: Container) -> Container:
    """Open the stores and define them in Parlant's container (before its defaults)."""
    await shutdown_module()
    stack = AsyncExitStack()
    try:
        stores = await stack.enter_async_context(
            supabase_stores(every_store=True, allow_migration=False)
        )
        configured = await stores.configure_container(container)
    except BaseException:
        await stack.aclose()
        raise
    _open.append((stack, stores))
    return configured


async def initialize_module(container: Container) -> None:
    """After Parlant's own set-up: the stores that need the NLP service, the embedding cache."""
    if not _open:
        raise RuntimeError(
            "parlant_supabase_sync.parlant_module: initialize_module ran before "
            "configure_module; list the module in --module (parlant-server calls both)"
        )
    await _open[-1][1].initialize_container(container)


async def shutdown_module() -> None:
    """Close the stores, the databases and the HTTP client (safe to call more than once)."""
    while _open:
        stack, _ = _open.pop()
        await stack.aclose()
