"""Companies for the API tests beside the `api` fixture's Acme: Acme's administrator, the
provider's engineer, and logging in."""

from __future__ import annotations

from pathlib import Path

import httpx

from e2e.server import acme_plan
from nuage.pbx.directory import Directory
from nuage.pbx.provision import apply_plan
from nuage.store.database import Database

API = "/api/v1"

Headers = dict[str, str]

# Acme as the `api` fixture provisions it, with an administrator.
ACME_WITH_ADMIN = acme_plan(
    5999,
    extra="""
[[users]]
name = "Ada Admin"
extension = "1009"
email = "ada@acme.example"
password = "app-1009"
sip_password = "sip-1009"
role = "admin"
""",
)

PROVIDER = """
[company]
name = "Nuage Provider"
domain = "provider.example"
country = "BE"

[[users]]
name = "Eve Engineer"
extension = "9001"
email = "eve@provider.example"
password = "app-9001"
sip_password = "sip-9001"
role = "engineer"
"""

# Email and app password of each role.
ACME_USER = ("elodie@acme.example", "app-1001")
ACME_ADMIN = ("ada@acme.example", "app-1009")
ENGINEER = ("eve@provider.example", "app-9001")


async def provision(
    api: httpx.AsyncClient, database: Database, tmp_path: Path, *plans: str
) -> Directory:
    """Apply the plans, and reload the API's directory (as the server does on a change)."""
    for number, text in enumerate(plans):
        path = tmp_path / f"plan-{number}.toml"
        path.write_text(text)
        await apply_plan(database, path)
    directory: Directory = api._transport.app.state.directory  # type: ignore[attr-defined]
    await directory.load()
    return directory


async def logged_in(api: httpx.AsyncClient, login: tuple[str, str]) -> Headers:
    email, password = login
    response = await api.post(f"{API}/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
