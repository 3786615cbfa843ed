"""The ids of rows (users, companies, numbers, trunks, recordings, call records) in paths
and queries.

The database's ids are 32-bit integers (PostgreSQL's INTEGER; SQLite takes 64 bits, but
the API must answer alike on both). A larger number names no row, yet PostgreSQL refuses
it as a query argument rather than finding nothing: such ids are refused up front, 422
like any invalid field, and the OpenAPI description gives the range.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

__all__ = ["MAX_ID", "RowId"]

MAX_ID = 2**31 - 1

# A row's id in a path: 1 to MAX_ID.
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
