"""Parlant's document-database result types, or identical stand-ins when parlant is absent.

The synchronous core and the CLI must work without parlant installed; when it is installed the
core returns Parlant's own classes so the async facade passes them through untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parlant.core.persistence.common import Cursor, ObjectId, SortDirection, Where
    from parlant.core.persistence.document_database import (
        BaseDocument,
        CollectionIndex,
        DeleteResult,
        FindResult,
        InsertResult,
        UpdateResult,
    )
else:
    try:
        from parlant.core.persistence.common import Cursor, ObjectId, SortDirection, Where
        from parlant.core.persistence.document_database import (
            BaseDocument,
            CollectionIndex,
            DeleteResult,
            FindResult,
            InsertResult,
            UpdateResult,
        )
    except ImportError:  # pragma: no cover - exercised in the no-parlant tox env
        from ._fallback_types import (
            BaseDocument,
            CollectionIndex,
            Cursor,
            DeleteResult,
            FindResult,
            InsertResult,
            ObjectId,
            SortDirection,
            UpdateResult,
            Where,
        )

__all__ = [
    "BaseDocument",
    "CollectionIndex",
    "Cursor",
    "DeleteResult",
    "FindResult",
    "InsertResult",
    "ObjectId",
    "SortDirection",
    "UpdateResult",
    "Where",
]
