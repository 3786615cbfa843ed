"""Login, token refresh and logout; and the dependency every other route uses to know
who calls (a bearer access token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from nuage.api.errors import ApiError
from nuage.pbx.app_sessions import (
    ACCESS_LIFETIME,
    REFRESH_LIFETIME,
    AppSessions,
    LoginRefusedError,
    Principal,
    Tokens,
)

_bearer = HTTPBearer(auto_error=False)


class LoginRequest(BaseModel):
    # No account's email has a control character, and PostgreSQL refuses NUL in a query.
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^\x00-\x1f\x7f]+$")
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int  # seconds the access token is valid
    refresh_expires_in: int

    @classmethod
    def of(cls, tokens: Tokens) -> TokensOut:
        return cls(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_in=int(ACCESS_LIFETIME.total_seconds()),
            refresh_expires_in=int(REFRESH_LIFETIME.total_seconds()),
        )


def sessions_of(request: Request) -> AppSessions:
    sessions: AppSessions | None = getattr(request.app.state, "sessions", None)
    if sessions is None:
        raise ApiError(503, "starting", "The server is starting; try again in a moment")
    return sessions


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from its access token; 401 without a valid one."""
    if credentials is None:
        raise ApiError(
            401, "unauthorized", "An access token is needed", {"WWW-Authenticate": "Bearer"}
        )
    found = await sessions_of(request).authenticate(credentials.credentials)
    if found is None:
        raise ApiError(
            401,
            "invalid_token",
            "The access token is invalid or expired",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return found


Caller = Annotated[Principal, Depends(principal)]

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=TokensOut)
async def login(body: LoginRequest, request: Request) -> TokensOut:
    """Email and app password in, tokens out."""
    source = request.client.host if request.client is not None else "unknown"
    try:
        tokens = await sessions_of(request).login(body.email, body.password, source)
    except LoginRefusedError as refused:
        if refused.throttled:
            raise ApiError(429, "too_many_requests", str(refused)) from None
        raise ApiError(401, "invalid_credentials", str(refused)) from None
    return TokensOut.of(tokens)


@router.post("/refresh", response_model=TokensOut)
async def refresh(body: RefreshRequest, request: Request) -> TokensOut:
    """New tokens for a refresh token; the old pair stops working."""
    tokens = await sessions_of(request).refresh(body.refresh_token)
    if tokens is None:
        raise ApiError(401, "invalid_token", "The refresh token is invalid or expired")
    return TokensOut.of(tokens)


@router.post("/logout", status_code=204)
async def logout(caller: Caller, request: Request) -> Response:
    """End the session: its tokens stop working."""
    await sessions_of(request).logout(caller)
    return Response(status_code=204)
