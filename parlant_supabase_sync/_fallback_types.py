"""Field-for-field copies of Parlant's persistence types, used only when parlant is not installed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any, Generic, NewType, TypedDict, TypeVar

ObjectId = NewType("ObjectId", str)
Where = dict[str, Any]


class SortDirection(Enum):
    ASC = auto()
    DESC = auto()


@dataclass(frozen=True)
class Cursor:
    creation_utc: str
    id: ObjectId


class BaseDocument(TypedDict, total=False):
    id: ObjectId
    creation_utc: str
    version: str


TDocument = TypeVar("TDocument")


@dataclass(frozen=True)
class FindResult(Generic[TDocument]):
    items: Sequence[TDocument]
    total_count: int
    has_more: bool
    next_cursor: Cursor | None = None

    def __iter__(self) -> Iterator[TDocument]:
        return iter(self.items)

    def __bool__(self) -> bool:
        return self.total_count > 0


@dataclass(frozen=True)
class InsertResult:
    acknowledged: bool


@dataclass(frozen=True)
class UpdateResult(Generic[TDocument]):
    acknowledged: bool
    matched_count: int
    modified_count: int
    updated_document: TDocument | None


@dataclass(frozen=True)
class DeleteResult(Generic[TDocument]):
    acknowledged: bool
    deleted_count: int
    deleted_document: TDocument | None


@dataclass(frozen=True)
class CollectionIndex:
    fields: Sequence[tuple[str, SortDirection]]
    unique: bool = False
