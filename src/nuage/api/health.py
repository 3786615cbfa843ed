"""/healthz: whether the server is up, and its live counters, for monitoring."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse


def health_router(
    is_ready: Callable[[], dict[str, bool]], counters: Callable[[], dict[str, int]]
) -> APIRouter:
    """``is_ready`` tells, per component (sip, media, storage), whether it is up;
    ``counters`` gives live figures (calls, media sessions, ...) for monitoring."""
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        components = is_ready()
        ready = all(components.values())
        return JSONResponse(
            {
                "status": "ok" if ready else "starting",
                "components": components,
                "counters": counters(),
            },
            status_code=200 if ready else 503,
        )

    return router
