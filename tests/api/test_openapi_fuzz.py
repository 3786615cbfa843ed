"""Schemathesis against the API's own OpenAPI description: whatever a client sends, as a
plain user, a company administrator or an engineer, the API answers without a server
error, and its answer is the one the description publishes (errors included); and the
inputs that made PostgreSQL fail (ids beyond 32 bits, NUL, overlong strings) are refused
with a 422."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.plans import (
    ACME_ADMIN,
    ACME_USER,
    ACME_WITH_ADMIN,
    API,
    ENGINEER,
    PROVIDER,
    Headers,
    logged_in,
    provision,
)
from nuage.api.ids import MAX_ID
from nuage.store.database import Database

pytestmark = pytest.mark.db

# Uploads (a voicemail greeting) are binary: fuzzed as raw bytes, like octet streams.
schemathesis.serializer.alias("audio/wav", "application/octet-stream")


BASE_URL = "http://nuage"

# Enough for the inputs that break a route to come up (Hypothesis tries boundaries and odd
# characters early), few enough that the three runs take about half a minute.
MAX_EXAMPLES = 12
CHECKS = [not_a_server_error, response_schema_conformance]

LOGINS = {"user": ACME_USER, "admin": ACME_ADMIN, "engineer": ENGINEER}

AnyCase = Case[Any]

# Ends the caller's session: fuzzed last, so that the other routes run authenticated.
LOGOUT = f"POST {API}/auth/logout"


async def _send(api: httpx.AsyncClient, case: AnyCase) -> httpx.Response:
    """The case as schemathesis would send it (its requests-style arguments), through
    the test's own ASGI client: schemathesis' ASGI transport runs the application on an
    event loop of its own, where the database's connections cannot be used."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    assert not kwargs.get("cookies"), "no route reads cookies: send them here if one does"
    return await api.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs["headers"],
        params=kwargs.get("params"),
        json=kwargs.get("json"),
        content=kwargs.get("data"),
    )


def _fuzz(strategy: st.SearchStrategy[AnyCase], send: Callable[[AnyCase], httpx.Response]) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,  # the same cases on every run: a failure is reproducible
        database=None,
        deadline=None,  # a request's time is no failure here
        # No "explain" phase: it replays each failure many times to comment on it.
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        # Large bodies are slow to generate, and a strategy's filtering is schemathesis'.
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: AnyCase) -> None:
        case.validate_response(send(case), checks=CHECKS)

    run()


@pytest.fixture
async def acme(api: httpx.AsyncClient, database: Database, tmp_path: Path) -> int:
    """Acme with its administrator, and the provider's engineer: Acme's id."""
    directory = await provision(api, database, tmp_path, ACME_WITH_ADMIN, PROVIDER)
    company = directory.company_by_domain("acme.example")
    assert company is not None
    return company.id


@pytest.mark.parametrize("role", sorted(LOGINS))
async def test_no_input_makes_the_api_fail(api: httpx.AsyncClient, acme: int, role: str) -> None:
    headers = await logged_in(api, LOGINS[role])
    schema = schemathesis.openapi.from_dict((await api.get(f"{API}/openapi.json")).json())
    operations: list[APIOperation[Any, Any, Any, Any]] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    operations.sort(key=lambda operation: operation.label == LOGOUT)
    loop = asyncio.get_running_loop()

    def send(case: AnyCase) -> httpx.Response:
        # Hypothesis drives the cases from a worker thread; the requests run here, on the
        # loop the database's connections belong to.
        return asyncio.run_coroutine_threadsafe(_send(api, case), loop).result(timeout=30)

    failures: list[str] = []
    for operation in operations:
        path_parameters: list[dict[str, Any]] = [{}]
        if any(parameter.name == "company_id" for parameter in operation.path_parameters):
            # A random company id is refused before any work: Acme's reaches the rows.
            path_parameters.append({"company_id": acme})
        strategy = st.one_of(
            [
                operation.as_strategy(mode, headers=headers, path_parameters=fixed)
                for mode in GenerationMode
                for fixed in path_parameters
            ]
        )
        try:
            await asyncio.to_thread(_fuzz, strategy, send)
        # Schemathesis reports the failures of its checks as a BaseExceptionGroup.
        except (Exception, BaseExceptionGroup) as error:
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)


TOO_BIG = MAX_ID + 1  # PostgreSQL's INTEGER refuses it as a query argument


async def test_what_the_database_cannot_take_is_refused(api: httpx.AsyncClient, acme: int) -> None:
    """Ids beyond 32 bits, NUL (PostgreSQL refuses it in text) and strings longer than
    their columns: each once a 500 on PostgreSQL, now 422 naming the field."""
    who = {role: await logged_in(api, login) for role, login in LOGINS.items()}
    user = {"extension": "1500", "password": "app-1500", "sip_password": "sip-1500"}
    trunk = {"name": "backup", "host": "192.0.2.60"}
    elodie = (await api.get(f"{API}/me", headers=who["user"])).json()["id"]
    cases: list[tuple[Headers, str, str, dict[str, Any] | None, str]] = [
        ({}, "POST", "/auth/login", {"email": "ada\x00@acme.example", "password": "x"}, "email"),
        (who["user"], "GET", f"/recordings/{TOO_BIG}", None, "recording_id"),
        (who["user"], "GET", f"/me/calllog?before={TOO_BIG}", None, "before"),
        (who["user"], "GET", f"/directory/{TOO_BIG}", None, "user_id"),
        (who["user"], "PUT", f"/favorites/{TOO_BIG}", None, "user_id"),
        (who["admin"], "GET", f"/companies/{TOO_BIG}/users", None, "company_id"),
        (who["admin"], "GET", f"/companies/{acme}/users/{TOO_BIG}", None, "user_id"),
        (who["admin"], "DELETE", f"/companies/{acme}/numbers/{TOO_BIG}", None, "number_id"),
        (who["admin"], "PATCH", f"/companies/{acme}/trunks/{TOO_BIG}", {}, "trunk_id"),
        (who["engineer"], "DELETE", f"/companies/{TOO_BIG}", None, "company_id"),
        (
            who["admin"],
            "POST",
            f"/companies/{acme}/users",
            {**user, "name": "Nul\x00", "email": "nul@acme.example"},
            "name",
        ),
        (
            who["admin"],
            "POST",
            f"/companies/{acme}/users",
            {**user, "name": "Nul", "email": "nul\x00@acme.example"},
            "email",
        ),
        (who["admin"], "PATCH", f"/companies/{acme}/users/{elodie}", {"name": "\x00"}, "name"),
        (
            who["admin"],
            "POST",
            f"/companies/{acme}/statuses",
            {"key": "beach", "name": "Be\x00ch"},
            "name",
        ),
        (
            who["admin"],
            "POST",
            f"/companies/{acme}/trunks",
            {**trunk, "username": "u" * 201},
            "username",
        ),
        (
            who["admin"],
            "POST",
            f"/companies/{acme}/trunks",
            {**trunk, "username": "u", "password": "p\x00"},
            "password",
        ),
        (
            who["engineer"],
            "POST",
            "/companies",
            {"name": "Init\x00ch", "domain": "initech.example", "country": "NL"},
            "name",
        ),
        (who["engineer"], "PATCH", f"/companies/{acme}", {"name": "Acme\x00"}, "name"),
    ]
    for headers, method, path, body, field in cases:
        response = await api.request(method, API + path, headers=headers, json=body)
        assert response.status_code == 422, (method, path, response.text)
        assert response.json()["error"]["field"] == field, (method, path, response.text)
