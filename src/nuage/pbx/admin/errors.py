"""Why an administrative change is refused: each error says which field, when one is at
fault, and the API answers it with its own status (404, 403, 422, 409)."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["AdminError", "ConflictError", "ForbiddenError", "InvalidError", "NotFoundError"]


class AdminError(Exception):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFoundError(AdminError):
    """No such row in that company (rows of other companies are not said to exist)."""


class ForbiddenError(AdminError):
    """The caller's role may not make this change."""


class InvalidError(AdminError):
    """A value is wrong, alone or for the company (a route to no extension)."""

    @classmethod
    def of(cls, exc: ValidationError) -> InvalidError:
        """The first of pydantic's errors, with the field it names."""
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        field = ".".join(str(part) for part in first["loc"]) or None
        return cls(message, field=field)


class ConflictError(AdminError):
    """The change collides with the company's (or another company's) rows; ``code`` says
    how: extension_taken, email_taken, number_taken, name_taken, key_taken, domain_taken,
    in_use (something still refers to the row), conflict (anything else)."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.code = code
