"""The web app at /: the build's files with their cache headers, index.html for app paths,
never in place of the API, /healthz or /sip; 503 saying how to build it when it is not."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from nuage.api import webapp
from nuage.api.app import create_app


def _client(directory: Path) -> httpx.AsyncClient:
    app = create_app(lambda: {"storage": True}, dict, webapp_dir=directory)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://nuage")


@pytest.fixture
def build(tmp_path: Path) -> Path:
    root = tmp_path / "webapp"
    (root / "assets").mkdir(parents=True)
    (root / "icons").mkdir()
    (root / "index.html").write_text("<!doctype html><title>Nuage</title>")
    (root / "sw.js").write_text("// service worker")
    (root / "manifest.webmanifest").write_text('{"name": "Nuage"}')
    (root / "assets" / "index-Ab12Cd34.js").write_text("console.log(1)")
    # The build's gzipped copy, sent to browsers that accept it.
    (root / "assets" / "index-Ab12Cd34.js.gz").write_bytes(gzip.compress(b"console.log(1)"))
    (root / "icons" / "icon-192.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / "secret.txt").write_text("not served")
    return root


@pytest.fixture
async def client(build: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(build) as http:
        yield http


def test_the_package_serves_its_own_build() -> None:
    assert Path(webapp.__file__).resolve().parent.parent / "webapp" == webapp.WEBAPP_DIR


async def test_app_paths_answer_index_html_never_cached(client: httpx.AsyncClient) -> None:
    for path in ("/", "/contact/12", "/calls/missed", "/voicemail"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.text.startswith("<!doctype html>")
        assert response.headers["cache-control"] == "no-cache"
        assert "default-src 'self'" in response.headers["content-security-policy"]
    head = await client.head("/")
    assert (head.status_code, head.content) == (200, b"")


async def test_files_have_their_cache_and_type(client: httpx.AsyncClient) -> None:
    asset = await client.get("/assets/index-Ab12Cd34.js")
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in asset.headers["content-type"]
    assert (asset.headers["content-encoding"], asset.text) == ("gzip", "console.log(1)")
    assert asset.headers["vary"] == "Accept-Encoding"
    plain = await client.get("/assets/index-Ab12Cd34.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == b"console.log(1)"
    worker = await client.get("/sw.js")
    assert worker.headers["cache-control"] == "no-cache"
    manifest = await client.get("/manifest.webmanifest")
    assert manifest.headers["content-type"] == "application/manifest+json"
    icon = await client.get("/icons/icon-192.png")
    assert (icon.status_code, icon.headers["content-type"]) == (200, "image/png")


async def test_missing_files_and_escapes_are_not_the_app(client: httpx.AsyncClient) -> None:
    for path in ("/assets/index-Old.js", "/favicon.ico", "/%2e%2e/secret.txt", "/icons/%2e%2e/x"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert (await client.post("/")).status_code == 404


async def test_the_server_s_own_paths_are_never_shadowed(client: httpx.AsyncClient) -> None:
    for path in ("/api", "/api/v1/nothing", "/sip", "/healthz/x"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found", path
    health = await client.get("/healthz")
    assert health.json()["status"] == "ok"
    # The API is not served yet (no services): it says so, in its own shape.
    me = await client.get("/api/v1/me", headers={"Authorization": "Bearer x.y"})
    assert (me.status_code, me.json()["error"]["code"]) == (503, "starting")


async def test_without_a_build_the_app_says_how_to_make_one(tmp_path: Path) -> None:
    async with _client(tmp_path / "nothing") as client:
        for path in ("/", "/contact/3"):
            response = await client.get(path)
            assert response.status_code == 503
            assert response.headers["content-type"].startswith("text/plain")
            assert "make web" in response.text
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/api/v1/nothing")).status_code == 404
