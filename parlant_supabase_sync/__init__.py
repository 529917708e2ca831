"""Supabase (PostgREST) document database for Parlant.

The synchronous core (`SyncDocumentDatabase`) needs no event loop; the Parlant adapter
(`SupabaseDocumentDatabase`) is imported lazily so that scripts and the CLI work without parlant.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "SupabaseSettings": "parlant_supabase_sync.settings",
    "RetryPolicy": "parlant_supabase_sync.settings",
    "SyncDocumentDatabase": "parlant_supabase_sync.core",
    "SyncDocumentCollection": "parlant_supabase_sync.core",
    "SupabaseDocumentDatabase": "parlant_supabase_sync.facade",
    "SupabaseDocumentCollection": "parlant_supabase_sync.facade",
    "supabase_stores": "parlant_supabase_sync.wiring",
    "connect": "parlant_supabase_sync.api",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'parlant_supabase_sync' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "parlant":
            raise
        raise ModuleNotFoundError(
            f"parlant_supabase_sync.{name} needs Parlant: install the extra with "
            "pip install 'parlant-supabase-sync[parlant]'",
            name=exc.name,
        ) from None
    return getattr(module, name)


__all__ = [
    "RetryPolicy",
    "SupabaseDocumentCollection",
    "SupabaseDocumentDatabase",
    "SupabaseSettings",
    "SyncDocumentCollection",
    "SyncDocumentDatabase",
    "__version__",
    "connect",
    "supabase_stores",
]
