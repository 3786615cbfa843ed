"""Composition-root helpers."""

import ipaddress

from nuage.server import advertised_media_address


async def test_advertised_media_address() -> None:
    assert await advertised_media_address("127.0.0.1", None) == "127.0.0.1"
    assert await advertised_media_address("0.0.0.0", "203.0.113.7") == "203.0.113.7"
    resolved = await advertised_media_address("0.0.0.0", "localhost")
    assert ipaddress.ip_address(resolved).is_loopback
    primary = ipaddress.ip_address(await advertised_media_address("0.0.0.0", None))
    assert not primary.is_unspecified and primary.version == 4
