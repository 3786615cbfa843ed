"""One JSON error shape for the whole API:

    {"error": {"code": "invalid", "message": "...", "field": "email"}}

``code`` is stable and meant for programs, ``message`` for people; ``field`` names the
request field at fault (validation errors, and conflicts such as an email in use).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from nuage.pbx.admin.errors import (
    AdminError,
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid",
    429: "too_many_requests",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, for programs: not_found, invalid, conflict...")
    message: str = Field(description="For people.")
    field: str | None = Field(None, description="The request field at fault, if one is.")


class ErrorOut(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


# The errors every API route may answer, for its OpenAPI description: given for "4XX",
# they also replace FastAPI's default 422 (its own validation error body, which this API
# never sends).
RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorOut, "description": "Refused: the error says why."},
    503: {"model": ErrorOut, "description": "The server is starting, or overloaded."},
}


class ApiError(Exception):
    """An error answered as is: its status, code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.field = field

    @classmethod
    def of(cls, error: AdminError) -> ApiError:
        """The answer to an administrative change the domain refused."""
        if isinstance(error, ConflictError):
            return cls(409, error.code, error.message, field=error.field)
        status = {NotFoundError: 404, ForbiddenError: 403, InvalidError: 422}.get(type(error), 400)
        return cls(status, _CODES[status], error.message, field=error.field)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def install(app: FastAPI) -> None:
    """Answer every error the API raises in the one shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.field),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(AdminError)
    async def admin_error(request: Request, exc: AdminError) -> JSONResponse:
        return await api_error(request, ApiError.of(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        # ("body", "email") -> "email": the client knows where it put the field.
        location = [
            str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")
        ]
        message = str(first.get("msg", "Invalid request"))
        return JSONResponse(
            error_body("invalid", message, ".".join(location) or None), status_code=422
        )
