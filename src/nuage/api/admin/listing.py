"""The shape of the admin lists."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

__all__ = ["Listing"]

ItemT = TypeVar("ItemT", bound=BaseModel)


class Listing(BaseModel, Generic[ItemT]):
    """A list, as Wazo's confd answers them."""

    total: int = Field(description="How many items (lists are not paged).")
    items: list[ItemT]

    @classmethod
    def of(cls, items: list[ItemT]) -> Listing[ItemT]:
        return cls(total=len(items), items=items)
