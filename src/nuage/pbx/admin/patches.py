"""PATCH bodies made from the plan's entry models: one model for plan and API.

``Patch[UserPlan]`` has every field of UserPlan but those that identify an entry
(``Field(frozen=True)``), each optional, with the entry's type, constraints and
description: a field sent is validated as in the plan, a field left out stays as it is.
Rules across fields (a trunk that registers needs credentials) are checked on the entry
the patch makes (``apply_patch``).
"""

from __future__ import annotations

import functools
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo

from nuage.pbx.admin.errors import InvalidError

__all__ = ["Patch", "apply_patch"]

EntryT = TypeVar("EntryT", bound=BaseModel)


class Patch(BaseModel, Generic[EntryT]):
    """Some fields of an entry, to change."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def changes(self) -> dict[str, Any]:
        """The fields sent, by their names in the entry's input (aliases)."""
        return self.model_dump(exclude_unset=True, by_alias=True)

    def __class_getitem__(  # type: ignore[override]
        cls, entry: type[BaseModel]
    ) -> type[BaseModel]:
        # Subscripting makes the patch model of that entry, rather than pydantic's generic
        # specialisation: type checkers still see Patch[UserPlan], FastAPI the fields.
        return _patch_model(entry)


def _no_default(schema: dict[str, Any]) -> None:
    # A field left out is unchanged, not null: a "default" in the schema would say otherwise.
    schema.pop("default", None)


@functools.cache
def _patch_model(entry: type[BaseModel]) -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (
            info.annotation,
            # None stands for "not sent" (model_fields_set); an explicit null is still
            # refused where the entry's type refuses it.
            FieldInfo.merge_field_infos(
                info, default=None, default_factory=None, json_schema_extra=_no_default
            ),
        )
        for name, info in entry.model_fields.items()
        if not info.frozen
    }
    return create_model(
        f"{entry.__name__}Patch",
        __base__=Patch,
        __doc__=f"Any of the fields of {entry.__name__}; the others stay as they are.",
        **fields,
    )


def apply_patch(
    entry_type: type[EntryT], current: dict[str, Any], changes: dict[str, Any]
) -> EntryT:
    """The entry ``current`` (its fields, by alias) with a patch's ``changes``;
    InvalidError names the field when the result is not a valid entry."""
    try:
        return entry_type.model_validate(current | changes)
    except ValidationError as exc:
        raise InvalidError.of(exc) from None
