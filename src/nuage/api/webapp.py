"""The web app (web/, built into src/nuage/webapp by `make web`) at `/`.

It answers only what no route of the application answers: it is the router's default, so
the API (/api/v1), /healthz, /sip and any route added later always come first, and paths
under those prefixes never fall back to the app. Files of the build are served as they
are: the hashed assets (/assets/) with a year-long cache, index.html and the service
worker with ``no-cache`` (a new build takes effect at the next load); a browser that
accepts gzip gets the build's gzipped copy of a file (file.js.gz) when there is one. Any
other path without a file extension is an app path (/contact/12, /voicemail...):
index.html, where the app's router shows the screen. Without a build, every app path
answers 503 saying how to make one.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path, PurePosixPath

from starlette.datastructures import Headers
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

WEBAPP_DIR = Path(__file__).resolve().parent.parent / "webapp"

# Never the app's: what the server itself answers, now or later.
_RESERVED = ("/api", "/healthz", "/sip")

_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
_SHORT = "public, max-age=3600"

_NOT_BUILT = (
    "The web app is not built: run `make web` (cd web && npm ci && npm run build), "
    "then reload this page.\n"
)

# The app talks only to this server (the REST API, the event stream, the SIP WebSocket);
# WebRTC media is not governed by it. Styles set from script are allowed by 'self'.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
        "media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _reserved(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in _RESERVED)


class WebApp:
    """An ASGI app for the router's default: the build in ``directory``, or ``fallback``
    (the router's own "not found") for everything that is not an app path."""

    def __init__(self, directory: Path, fallback: ASGIApp) -> None:
        self.directory = directory
        self._fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "/")
        if (
            scope["type"] != "http"
            or scope.get("method") not in ("GET", "HEAD")
            or _reserved(path)
            or "\x00" in path
        ):
            await self._fallback(scope, receive, send)
            return
        gzip = "gzip" in Headers(scope=scope).get("accept-encoding", "")
        response = self._response(path, gzip=gzip)
        if response is None:
            await self._fallback(scope, receive, send)
            return
        await response(scope, receive, send)

    def _response(self, path: str, *, gzip: bool) -> Response | None:
        root = self.directory.resolve()
        index = root / "index.html"
        if not index.is_file():
            return PlainTextResponse(_NOT_BUILT, status_code=503, headers={"Retry-After": "60"})
        parts = PurePosixPath(path).parts[1:]
        if ".." in parts:
            return None
        if parts:
            candidate = root.joinpath(*parts).resolve()
            if candidate.is_relative_to(root) and candidate.is_file():
                return self._file(candidate, parts, gzip=gzip)
            # A missing file (an old build's asset, a typo) is not the app.
            if parts[0] == "assets" or "." in parts[-1]:
                return None
        return self._file(index, ("index.html",), gzip=gzip)

    @staticmethod
    def _file(file: Path, parts: tuple[str, ...], *, gzip: bool) -> FileResponse:
        if parts[0] == "assets":
            cache = _IMMUTABLE
        elif parts[-1] in ("index.html", "sw.js"):
            cache = _REVALIDATE
        else:
            cache = _SHORT
        headers = {"Cache-Control": cache}
        if file.suffix == ".html":
            headers.update(_SECURITY_HEADERS)
        if file.suffix == ".webmanifest":
            media_type = "application/manifest+json"
        else:
            media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        compressed = file.with_name(file.name + ".gz")
        if compressed.is_file():
            headers["Vary"] = "Accept-Encoding"
            if gzip:
                headers["Content-Encoding"] = "gzip"
                file = compressed
        return FileResponse(file, headers=headers, media_type=media_type)
