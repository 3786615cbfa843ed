from __future__ import annotations

import pytest

from nuage.pbx.numbering import NumberError, OutboundPolicy, is_emergency_number, normalize_number


@pytest.mark.parametrize(
    ("dialled", "country", "expected"),
    [
        ("0475 12 34 56", "BE", "+32475123456"),
        ("0475.12.34.56", "BE", "+32475123456"),
        ("0475-12-34-56", "be", "+32475123456"),
        ("(02) 555 01 00", "BE", "+3225550100"),
        ("+33 1 23 45 67 89", "BE", "+33123456789"),
        ("0033 1 23 45 67 89", "BE", "+33123456789"),
        ("0033123456789", "NL", "+33123456789"),
        ("+32475123456", "FR", "+32475123456"),
        ("01 23 45 67 89", "FR", "+33123456789"),
        # North America's international prefix is 011, not 00.
        ("011 44 20 7946 0958", "US", "+442079460958"),
    ],
)
def test_normalize(dialled: str, country: str, expected: str) -> None:
    assert normalize_number(dialled, country) == expected


@pytest.mark.parametrize(
    ("dialled", "country", "fragment"),
    [
        ("", "BE", "not a telephone number"),
        ("0475 12 34 5x", "BE", "not a telephone number"),
        ("+32+475", "BE", "not a telephone number"),
        ("*43#", "BE", "not a telephone number"),
        ("0475 12 34", "BE", "not a valid number"),
        ("112", "BE", "not a valid number"),
        ("0475123456", "XX", "unknown country"),
    ],
)
def test_normalize_refuses(dialled: str, country: str, fragment: str) -> None:
    with pytest.raises(NumberError, match=fragment):
        normalize_number(dialled, country)


POLICY = OutboundPolicy.create(["be", "NL", "FR"], ["+3290"], 2)


def test_policy_allows_listed_countries() -> None:
    assert POLICY.check("+32475123456", 0).allowed
    assert POLICY.check("+33123456789", 1).allowed
    assert POLICY.check("+31201234567", 1).allowed


def test_policy_refuses_other_countries() -> None:
    decision = POLICY.check("+442079460958", 0)
    assert not decision.allowed
    assert decision.reason == "Destination country GB not allowed"


def test_policy_tells_apart_countries_sharing_a_code() -> None:
    policy = OutboundPolicy.create(["US"], [], 5)
    assert policy.check("+12125550100", 0).allowed
    assert not policy.check("+14165550100", 0).allowed  # Toronto, Canada


def test_policy_refuses_blocked_prefixes() -> None:
    decision = POLICY.check("+3290123456", 0)
    assert not decision.allowed
    assert decision.reason == "Destination +3290 blocked"


def test_policy_refuses_numbers_of_no_country() -> None:
    # +881: satellite phones, a classic toll-fraud destination, belong to no region.
    policy = OutboundPolicy.create(["BE"], [], 5)
    assert not policy.check("+881234567890", 0).allowed
    assert not policy.check("+32", 0).allowed


def test_policy_limits_concurrent_external_calls() -> None:
    assert POLICY.check("+32475123456", 1).allowed
    decision = POLICY.check("+32475123456", 2)
    assert not decision.allowed
    assert decision.reason == "Too many external calls (limit 2)"
    assert not OutboundPolicy.create(["BE"], [], 0).check("+32475123456", 0).allowed


@pytest.mark.parametrize(
    ("dialled", "country", "emergency"),
    [
        ("112", "BE", True),
        ("101", "BE", True),
        ("1 12", "FR", True),
        ("911", "US", True),
        ("1001", "BE", False),
        ("0475123456", "BE", False),
        ("+32112", "BE", False),
    ],
)
def test_emergency_numbers(dialled: str, country: str, emergency: bool) -> None:
    assert is_emergency_number(dialled, country) is emergency
