"""The HTTP application: health now, the REST API under /api/v1 later."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse


def create_app(
    is_ready: Callable[[], dict[str, bool]], counters: Callable[[], dict[str, int]]
) -> FastAPI:
    """``is_ready`` tells, per component (sip, media, storage), whether it is up;
    ``counters`` gives live figures (calls, media sessions, ...) for monitoring."""
    app = FastAPI(title="Nuage", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
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

    return app
