"""The RFC 3261 grammar for header values and URIs (parsing and formatting).

STUB: signatures agreed with nuage.sip.message; the SIP-core helper implements them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nuage.sip.message import URI, Address, CSeq, Message, Via


class SipSyntaxError(ValueError):
    """Input that does not follow the SIP grammar. ``str()`` says what and where."""


def split_comma_list(value: str) -> list[str]:
    raise NotImplementedError


def parse_uri(text: str) -> URI:
    raise NotImplementedError


def format_uri(uri: URI) -> str:
    raise NotImplementedError


def parse_address(text: str) -> Address:
    raise NotImplementedError


def format_address(address: Address) -> str:
    raise NotImplementedError


def parse_via(text: str) -> Via:
    raise NotImplementedError


def format_via(via: Via) -> str:
    raise NotImplementedError


def parse_cseq(text: str) -> CSeq:
    raise NotImplementedError


def parse_delta_seconds(text: str) -> int:
    raise NotImplementedError


def serialize(message: Message) -> bytes:
    raise NotImplementedError
