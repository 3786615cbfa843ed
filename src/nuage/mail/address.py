"""Mail addresses as written in a From or To header."""

from __future__ import annotations

from email.headerregistry import Address, AddressHeader, HeaderRegistry


def mail_address(value: str) -> Address:
    """The one address in ``value`` ("Name <box@host>" or "box@host"); ValueError when it
    holds none, several, or a malformed one (a line break among others)."""
    header = HeaderRegistry()("from", value)
    assert isinstance(header, AddressHeader)  # what the registry makes of a From
    if header.defects or len(header.addresses) != 1:
        raise ValueError(f"{value!r} is not one mail address")
    address: Address = header.addresses[0]
    if not address.username or not address.domain:
        raise ValueError(f"{value!r} is not one mail address")
    return address
