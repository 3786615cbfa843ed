"""End-to-end tests run a real server on a database. Those whose server keeps state in it
(registrations, call records, recordings, provisioning, menus) also run against
PostgreSQL (`make pg-test` selects the `db` marker); those about what happens to the media
and the signalling inside a call run once, on SQLite: the database plays no part in
what they check, and running them twice would double the suite's longest part."""

from pathlib import Path

import pytest

# Media and in-call signalling only: nothing they assert comes from the database.
_ONCE = {"test_hold.py", "test_transfer.py", "test_dtmf.py", "test_quality.py", "test_overload.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path))
        if "e2e" in path.parts and path.name not in _ONCE:
            item.add_marker(pytest.mark.db)
