"""Local Supabase stand-in: PostgreSQL plus a PostgREST-protocol gateway, for tests and demos.

Needs the `local` extra (`pip install 'parlant-supabase-sync[local]'`) and PostgreSQL server
binaries. Imported lazily: the pytest plugin in this package loads in every pytest run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .stack import LocalSupabase

__all__ = ["LocalSupabase"]


def __getattr__(name: str) -> Any:
    if name == "LocalSupabase":
        import importlib

        for dependency in ("psycopg", "psycopg_pool", "jwt"):
            try:
                importlib.import_module(dependency)
            except ModuleNotFoundError:
                raise ModuleNotFoundError(
                    f"the local stand-in needs {dependency}: install the extra with "
                    "pip install 'parlant-supabase-sync[local]' (and PostgreSQL server binaries)",
                    name=dependency,
                ) from None
        from .stack import LocalSupabase

        return LocalSupabase
    raise AttributeError(f"module 'parlant_supabase_sync.local' has no attribute {name!r}")
