"""External numbers: what the user dialled, as E.164, and whether the company may call it."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import shortnumberinfo

__all__ = ["NumberError", "OutboundPolicy", "PolicyDecision", "normalize_number", "region_of"]

# What people type or paste between digits: "0475 12 34 56", "+33 (0)1.23-45/67 89".
# Dialled before an extension (a user's or a group's), reaches its voicemail box directly:
# the caller hears the greeting without ringing anyone. Also a number's route.
VOICEMAIL_DEPOSIT_PREFIX = "*97"

_SEPARATORS = re.compile(r"[\s.\-()/]")
_DIALLABLE = re.compile(r"^\+?[0-9]+$")


class NumberError(ValueError):
    """The dialled string is not a valid telephone number."""


# Pure, and every inbound call reads its DID and caller through it: phonenumbers takes
# tens of microseconds a number.
@functools.lru_cache(maxsize=4096)
def normalize_number(dialled: str, country: str) -> str:
    """The E.164 form of a number dialled in `country` (ISO 3166 alpha-2).

    National numbers take the country's code, and its international prefix ("00" in
    Europe, "011" in North America) is understood. Numbers that do not exist in the
    numbering plan are refused here rather than sent to the carrier.
    """
    digits = _SEPARATORS.sub("", dialled)
    if not _DIALLABLE.match(digits):
        raise NumberError(f"{dialled!r} is not a telephone number")
    region = country.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise NumberError(f"unknown country {country!r}")
    try:
        parsed = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException as exc:
        raise NumberError(f"{dialled!r} is not a telephone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise NumberError(f"{dialled!r} is not a valid number (read as {country} when national)")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_emergency_number(dialled: str, country: str) -> bool:
    """Whether ``dialled`` is an emergency number in ``country`` (112, 101, 911, ...)."""
    digits = _SEPARATORS.sub("", dialled)
    return digits.isdigit() and bool(shortnumberinfo.is_emergency_number(digits, country.upper()))


def region_of(e164: str) -> str | None:
    """The ISO country of an E.164 number, or None when the number does not say."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    region: str | None = phonenumbers.region_code_for_number(parsed)
    return region


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    allowed: bool
    # Short and ASCII: it becomes the reason phrase of the 403 and a log line.
    reason: str


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """A company's rules for external calls, the guard against toll fraud."""

    allowed_countries: frozenset[str]
    blocked_prefixes: tuple[str, ...]
    max_external_calls: int

    @classmethod
    def create(
        cls,
        allowed_countries: Iterable[str],
        blocked_prefixes: Iterable[str],
        max_external_calls: int,
    ) -> OutboundPolicy:
        return cls(
            allowed_countries=frozenset(c.upper() for c in allowed_countries),
            blocked_prefixes=tuple(blocked_prefixes),
            max_external_calls=max_external_calls,
        )

    def check(self, e164: str, active_external_calls: int) -> PolicyDecision:
        """May the company place one more external call, to e164 (already normalised),
        while it has active_external_calls in progress?"""
        if active_external_calls >= self.max_external_calls:
            return PolicyDecision(
                False, f"Too many external calls (limit {self.max_external_calls})"
            )
        for prefix in self.blocked_prefixes:
            if e164.startswith(prefix):
                return PolicyDecision(False, f"Destination {prefix} blocked")
        region = region_of(e164)
        if region is None or region not in self.allowed_countries:
            # An unknown region is refused: an allow-list must not leak through gaps.
            return PolicyDecision(False, f"Destination country {region or 'unknown'} not allowed")
        return PolicyDecision(True, "Allowed")
