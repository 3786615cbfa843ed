"""End-to-end tests run a real server on a database: SQLite, as `nuage demo` does. Those
whose server keeps state that differs between the two databases (registrations and their
expiry, registrations tied to a WebSocket, provisioning applied live, statuses, trunks)
also run against PostgreSQL (`make pg-test` selects the `db` marker). Call records and
recordings are written there by tests/api/test_calls.py (a call placed, recorded and
logged through the API), which runs on both. The others check media and signalling,
where the database plays no part, and run once: running every phone test twice would
double the suite's longest part."""

from pathlib import Path

import pytest

_ALSO_ON_POSTGRESQL = {
    "test_registration.py",
    "test_registrar.py",
    "test_robustness.py",
    "test_statuses.py",
    "test_trunks.py",
    "test_sip_websocket.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path))
        if "e2e" in path.parts and path.name in _ALSO_ON_POSTGRESQL:
            item.add_marker(pytest.mark.db)
