"""`nuage provision PLAN.toml`: make a company's rows in the store match a plan file.

The whole plan is checked before anything is written, and everything is written in one
transaction, so a bad plan changes nothing. Applying the same plan again changes nothing:
rows are compared with the plan and only differences are written. A running server reads
these rows on every request, so the changes take effect without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import tomllib
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import phonenumbers
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nuage.media.prompts import PROMPT_NAMES, missing_languages
from nuage.pbx.numbering import (
    VOICEMAIL_DEPOSIT_PREFIX,
    NumberError,
    OutboundPolicy,
    normalize_number,
)
from nuage.pbx.statuses import DEFAULT_STATUSES, Behaviour
from nuage.store import repositories
from nuage.store.database import Database
from nuage.store.models import (
    Base,
    CallRecord,
    Company,
    Group,
    GroupMember,
    IvrMenu,
    Number,
    Recording,
    Status,
    Trunk,
    TrunkAddress,
    User,
    VoicemailBox,
)

__all__ = [
    "CompanyNotFoundError",
    "CompanyPlan",
    "GroupPlan",
    "IvrPlan",
    "KindReport",
    "NumberPlan",
    "Plan",
    "PlanError",
    "PolicyPlan",
    "ProvisionReport",
    "StatusPlan",
    "TrunkPlan",
    "TrunkSettings",
    "UserPlan",
    "UserProfile",
    "VoicemailPlan",
    "VoicemailSettings",
    "apply_plan",
    "assign",
    "box_values",
    "company_values",
    "default_policy",
    "default_statuses",
    "find_company",
    "forward_target",
    "list_calls",
    "list_recordings",
    "load_plan",
    "password_hash",
    "set_group_members",
    "set_trunk_addresses",
    "sip_ha1",
    "sip_secrets",
    "status_values",
    "trunk_values",
    "user_values",
]

_HASHER = PasswordHasher()

# RFC 1123 host names, lower case; the domain is the SIP realm and a URI host.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
# Deliberately loose: the address must only be recognisably an email, the mail server
# decides the rest; no spaces nor control characters, one @, a dot in the domain.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_E164_PREFIX = re.compile(r"^\+[0-9]{1,15}$")
_STATUS_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_EXTENSION = re.compile(r"^[1-9][0-9]{1,5}$")
# The keys of a phone's keypad an IVR menu may offer.
IVR_KEYS = frozenset("0123456789*#")

# Extensions cannot start with 0: dialled numbers starting with 0 are national or
# international external numbers (0475..., 0033...), and the router must tell them apart.
Extension = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{1,5}$")]
# Where a number's calls go: an extension, or *97 and an extension (its voicemail box).
NumberRoute = Annotated[str, StringConstraints(pattern=r"^(\*97)?[1-9][0-9]{1,5}$")]
Secret = Annotated[str, StringConstraints(min_length=8, max_length=128)]


def _printable(value: str) -> str:
    # No name or stored credential needs a control character, and PostgreSQL refuses NUL
    # in text: the database would fail where the entry should be refused.
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_printable),
]
# A trunk's user name or password, kept as written (in columns of 200).
Credential = Annotated[str, StringConstraints(max_length=200), AfterValidator(_printable)]


class PlanError(Exception):
    """The plan is invalid; the message lists each wrong entry, e.g. "users[2].email: ..."."""


class CompanyNotFoundError(LookupError):
    pass


def _is_domain(value: str) -> bool:
    """A host name or an IP address: a small installation may use the server's address
    as the SIP domain of its single company."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return bool(_HOSTNAME.match(value.lower()))
    return True


def _region(value: str) -> str:
    region = value.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown country code {value!r} (ISO 3166 alpha-2, e.g. BE)")
    return region


def _email(value: str) -> str:
    if not _EMAIL.match(value) or len(value) > 254:
        raise ValueError(f"{value!r} is not an email address")
    return value.lower()


def _domain(value: str) -> str:
    domain = value.lower()
    if not _is_domain(domain):
        raise ValueError(f"{value!r} is not a domain name or IP address")
    return domain


def _host(value: str) -> str:
    _split_host(value)
    return value


def _addresses(value: list[str]) -> list[str]:
    normalised = []
    for address in value:
        try:
            normalised.append(str(ipaddress.ip_address(address)))
        except ValueError:
            raise ValueError(f"{address!r} is not an IP address") from None
    if len(set(normalised)) != len(normalised):
        raise ValueError("an address is listed twice")
    return sorted(normalised)


def _status_key(value: str) -> str:
    if not _STATUS_KEY.match(value):
        raise ValueError(f"{value!r} is not a key: 1 to 32 lower-case letters, digits, '-' or '_'")
    return value


def _colour(value: str) -> str:
    if not _COLOUR.match(value):
        raise ValueError(f"{value!r} is not a colour like '#2e7d32'")
    return value.lower()


# Validation lives in the types rather than in validator methods, so that a patch of an
# entry (nuage.pbx.admin.patches), made from the entry's fields, validates each field alike.
Email = Annotated[str, AfterValidator(_email)]
Domain = Annotated[str, AfterValidator(_domain)]
Country = Annotated[str, AfterValidator(_region)]
# "host:port" or "host" (port 5060); IPv6 as "[2001:db8::1]:5060".
HostPort = Annotated[str, AfterValidator(_host)]
IpAddresses = Annotated[list[str], AfterValidator(_addresses)]
StatusKey = Annotated[str, AfterValidator(_status_key)]
Colour = Annotated[str, AfterValidator(_colour)]
Language = Literal["fr", "nl", "en"]
Role = Literal["user", "admin", "engineer"]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# `frozen=True` on a field marks what identifies an entry: a patch cannot change it.


class CompanyPlan(_Entry):
    """A company: a customer of the provider."""

    name: Name = Field(description="Display name.")
    domain: Domain = Field(
        frozen=True,
        description="The company's SIP domain and digest realm (phones register as "
        "EXTENSION@DOMAIN); stored lower-case. The users' SIP secrets are bound to it.",
    )
    country: Country = Field(
        description="ISO 3166 alpha-2 code: numbers dialled in national form are read as "
        "numbers of this country; also the default outbound policy."
    )
    language: Language = Field("fr", description="Language of prompts and of the app.")
    recording_announcement: Literal["beep", "voice"] = Field(
        "beep",
        description='What both parties hear when a recording starts: "beep" (a tone) or '
        '"voice" (a sentence in the company\'s language).',
    )


class UserProfile(_Entry):
    """A user, as shown: everything but the secrets."""

    name: Name = Field(description="Full name, shown to colleagues and as caller name.")
    extension: Extension = Field(
        description="2 to 6 digits, not starting with 0; unique in the company (among users "
        "and IVR menus); also the SIP user name."
    )
    email: Email = Field(
        description="App login and where voicemail is sent; unique across all companies; "
        "stored lower-case."
    )
    role: Role = Field(
        "user",
        description='"user", "admin" (administers the company) or "engineer" (the '
        "provider's: administers every company).",
    )


class UserPlan(UserProfile):
    """A user with the secrets that are set but never shown."""

    password: Secret = Field(description="App password (stored argon2-hashed).")
    sip_password: Secret = Field(
        description="SIP digest password of the user's devices (stored as HA1 only)."
    )


class TrunkSettings(_Entry):
    """A trunk, as shown: everything but its password."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}$")] = Field(
        description="Unique in the company; letters, digits, '_', '.', '-'."
    )
    host: HostPort = Field(
        description='The carrier\'s SIP server, "host:port" or "host" (port 5060); IPv6 as '
        '"[2001:db8::1]:5060".'
    )
    transport: Literal["udp", "tcp"] = Field("udp", description="SIP transport to the carrier.")
    username: Credential | None = Field(
        None, description="User name for the carrier's digest challenges (calls, registration)."
    )
    # "register" would shadow a method pydantic models inherit from ABCMeta.
    register_: bool = Field(
        default=False,
        alias="register",
        description="Register to the carrier (needs username and password), so that it "
        "sends inbound calls to this server.",
    )
    inbound_addresses: IpAddresses = Field(
        default_factory=list,
        description="IP addresses the carrier sends inbound calls from (accepted without a "
        "challenge).",
    )
    caller_id: str | None = Field(
        None,
        description="Number presented on outbound calls, E.164 or national form (stored E.164).",
    )

    @property
    def address(self) -> tuple[str, int]:
        return _split_host(self.host)


class TrunkPlan(TrunkSettings):
    """A trunk with the password that is set but never shown."""

    password: Credential | None = Field(
        None, description="Password for the carrier's challenges (kept as written)."
    )

    @model_validator(mode="after")
    def _registration(self) -> TrunkPlan:
        if self.register_ and not (self.username and self.password):
            raise ValueError("register = true needs username and password")
        return self


class NumberPlan(_Entry):
    """An inbound number (DID) of the company."""

    number: str = Field(
        description="E.164, or national form (read with the company's country); unique "
        "across all companies."
    )
    route: NumberRoute = Field(
        description="The extension of a user (their phones ring), a group (its members' "
        "phones ring) or an IVR menu (it answers) of the company; or *97 and the extension "
        "of a user or group: straight to their voicemail box."
    )


class IvrPlan(_Entry):
    name: Name
    extension: Extension
    # A prompt of nuage.media.prompts; checked against the package's recordings in _check.
    prompt: str = "ivr_language"
    # None: the company's language.
    language: Language | None = None
    # Seconds to wait for a key once the prompt has played.
    timeout: float = Field(default=5.0, ge=1, le=60)
    # How many times the prompt plays (no key, or a wrong one) before the fallback.
    attempts: int = Field(default=3, ge=1, le=10)
    # The extension reached when attempts run out; None: "goodbye" and hang up.
    fallback: str | None = None
    # Key -> extension; keys and targets are checked in _check, which can name each key.
    keys: dict[str, str] = Field(default_factory=dict)


class StatusPlan(_Entry):
    """A status users can choose (F2) and what it does to calls to them (F3)."""

    key: StatusKey = Field(
        frozen=True,
        description="The status's name for the plan and the API: 1 to 32 lower-case letters, "
        "digits, '-', '_'.",
    )
    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
        AfterValidator(_printable),
    ] = Field(description="Shown in the app.")
    colour: Colour | None = Field(None, description='"#rrggbb"; none: the app picks one.')
    behaviour: Behaviour = Field(
        "ring",
        description='What a new call to a user in this status does: "ring" (their devices '
        'ring), "voicemail", "forward" (to forward_to) or "busy" (486, do not disturb).',
    )
    # A colleague's extension or a number; checked in _check, which knows the users.
    forward_to: str | None = Field(
        None,
        description='With "forward" only: the extension of a user of the company, or a number '
        "(E.164 or national form) that the company's policy allows.",
    )
    pause_acd: bool = Field(
        False, description="Pause the user in their ACD groups while in this status."
    )


class PolicyPlan(_Entry):
    """What external calls the company may make (against toll fraud)."""

    allowed_countries: list[str] = Field(
        description="ISO 3166 alpha-2 codes of the countries external calls may go to."
    )
    blocked_prefixes: list[str] = Field(
        default_factory=list, description='E.164 prefixes never called, like "+3290".'
    )
    max_external_calls: int = Field(
        default=10, ge=0, description="External calls in progress at once, at most."
    )

    @field_validator("allowed_countries")
    @classmethod
    def _countries(cls, value: list[str]) -> list[str]:
        return sorted({_region(v) for v in value})

    @field_validator("blocked_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not _E164_PREFIX.match(prefix):
                raise ValueError(f"{prefix!r} is not a number prefix like '+3290'")
        return sorted(set(value))


def default_policy(country: str) -> PolicyPlan:
    """The policy of a company whose plan has no [policy]: calls to its own country only."""
    return PolicyPlan(allowed_countries=[country])


def default_statuses(language: str) -> list[StatusPlan]:
    """The statuses of a company whose plan has no [[statuses]], named in its language."""
    return [
        StatusPlan(
            key=default.key,
            name=default.name(language),
            colour=default.colour,
            behaviour=default.behaviour,
            pause_acd=default.pause_acd,
        )
        for default in DEFAULT_STATUSES
    ]


class GroupPlan(_Entry):
    """A group of users at its own extension: a call to it rings every member whose
    status rings; unanswered, it goes to the group's voicemail box."""

    name: Name = Field(description="Shown in the app and in the group's voicemail mails.")
    extension: Extension = Field(
        description="Unique in the company among users, IVR menus and groups."
    )
    members: list[Extension] = Field(
        default_factory=list, description="The extensions of the users in the group."
    )


class VoicemailSettings(_Entry):
    """A voicemail box's settings; each left out has its default: on, no PIN, each
    message mailed with its audio (to the user; a group's only to its `email`), up to
    three minutes."""

    enabled: bool = Field(
        True, description="Takes the calls the user cannot (else those calls get 480)."
    )
    pin: Annotated[str, StringConstraints(pattern=r"^[0-9]{4,8}$")] | None = Field(
        None, description="4 to 8 digits asked when listening from a phone (stored argon2-hashed)."
    )
    send_email: bool = Field(True, description="Mail each new message.")
    email: Email | None = Field(
        None,
        description="Where to; default: a user's own address (a group's box without one "
        "mails nobody: its members see its messages in the app).",
    )
    attach_audio: bool = Field(True, description="Attach the message's audio to the mail.")
    max_seconds: int = Field(180, ge=10, le=600, description="Longest message, in seconds.")


class VoicemailPlan(VoicemailSettings):
    """A user's or group's voicemail box where it differs from the defaults: on, no PIN,
    each message mailed with its audio (to the user; a group's only to its `email`), up
    to three minutes."""

    extension: Extension = Field(description="The user or group whose box this is.")


class Plan(_Entry):
    company: CompanyPlan
    users: list[UserPlan] = Field(default_factory=list)
    trunks: list[TrunkPlan] = Field(default_factory=list)
    numbers: list[NumberPlan] = Field(default_factory=list)
    ivrs: list[IvrPlan] = Field(default_factory=list)
    groups: list[GroupPlan] = Field(default_factory=list)
    # None: the default statuses (DEFAULT_STATUSES), named in the company's language.
    statuses: list[StatusPlan] | None = None
    # Users without an entry have the default box.
    voicemail: list[VoicemailPlan] = Field(default_factory=list)
    # Without a [policy], external calls may only go to the company's own country.
    policy: PolicyPlan | None = None

    def effective_policy(self) -> PolicyPlan:
        return self.policy or default_policy(self.company.country)

    def effective_statuses(self) -> list[StatusPlan]:
        if self.statuses is not None:
            return self.statuses
        return default_statuses(self.company.language)


def _split_host(value: str) -> tuple[str, int]:
    """(host, port) from "host:port", "[IPv6]:port", or either without the port (5060)."""
    port_text: str | None = None
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{value!r} is not host:port")
        if rest:
            port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r}: {host!r} is not an IPv6 address") from None
    else:
        host, colon, rest = value.partition(":")
        if colon:
            port_text = rest
        if not _is_domain(host):
            raise ValueError(f"{value!r}: {host!r} is not a host name or address")
    if port_text is None:
        return host, 5060
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{value!r}: port must be between 1 and 65535")
    return host, int(port_text)


# -- checking ------------------------------------------------------------------------------


def _format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            # Table keys that are not names, like an IVR's keys."1", are quoted as in TOML.
            name = part if part.isidentifier() else f'"{part}"'
            text += f".{name}" if text else name
    return text


def _pydantic_errors(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        key = _format_loc(error["loc"]) or "(top level)"
        message = (
            "unknown key"
            if error["type"] == "extra_forbidden"
            else error["msg"].removeprefix("Value error, ")
        )
        lines.append(f"{key}: {message}")
    return lines


def _duplicates(values: list[str], path: str, key: str) -> list[str]:
    seen: set[str] = set()
    errors = []
    for index, value in enumerate(values):
        if value in seen:
            errors.append(f"{path}[{index}].{key}: duplicate {value!r}")
        seen.add(value)
    return errors


@dataclass(frozen=True)
class _CheckedPlan:
    plan: Plan
    # Plan numbers in E.164, in plan order.
    numbers: list[str]
    caller_ids: list[str | None]
    # The statuses to apply (the plan's or the defaults), and each one's forward target
    # (an extension, or a number in E.164), in plan order.
    statuses: list[StatusPlan] = field(default_factory=list)
    forward_targets: list[str | None] = field(default_factory=list)


def _check(plan: Plan) -> _CheckedPlan:
    """Cross-entry rules pydantic cannot see; every error names its entry."""
    errors: list[str] = []
    errors += _duplicates([u.extension for u in plan.users], "users", "extension")
    errors += _duplicates([u.email for u in plan.users], "users", "email")
    errors += _duplicates([t.name for t in plan.trunks], "trunks", "name")
    country = plan.company.country
    numbers: list[str] = []
    for index, entry in enumerate(plan.numbers):
        try:
            numbers.append(normalize_number(entry.number, country))
        except NumberError as exc:
            errors.append(f"numbers[{index}].number: {exc}")
            numbers.append(entry.number)
    errors += _duplicates(numbers, "numbers", "number")
    errors += _check_ivrs(plan)
    errors += _check_groups(plan)
    boxes = {u.extension for u in plan.users} | {g.extension for g in plan.groups}
    extensions = boxes | {i.extension for i in plan.ivrs}
    for index, entry in enumerate(plan.numbers):
        if entry.route.startswith(VOICEMAIL_DEPOSIT_PREFIX):
            owner = entry.route.removeprefix(VOICEMAIL_DEPOSIT_PREFIX)
            if owner not in boxes:
                errors.append(f"numbers[{index}].route: no user or group with extension {owner!r}")
        elif entry.route not in extensions:
            errors.append(
                f"numbers[{index}].route: no user, group or IVR with extension {entry.route!r}"
            )
    caller_ids: list[str | None] = []
    for index, trunk in enumerate(plan.trunks):
        if trunk.caller_id is None:
            caller_ids.append(None)
            continue
        try:
            caller_ids.append(normalize_number(trunk.caller_id, country))
        except NumberError as exc:
            errors.append(f"trunks[{index}].caller_id: {exc}")
            caller_ids.append(None)
    forward_targets = _check_statuses(plan, numbers, errors)
    errors += _duplicates([v.extension for v in plan.voicemail], "voicemail", "extension")
    for index, box in enumerate(plan.voicemail):
        if box.extension not in boxes:
            errors.append(
                f"voicemail[{index}].extension: no user or group with extension {box.extension!r}"
            )
    if errors:
        raise PlanError("\n".join(errors))
    return _CheckedPlan(
        plan=plan,
        numbers=numbers,
        caller_ids=caller_ids,
        statuses=plan.effective_statuses(),
        forward_targets=forward_targets,
    )


def _check_statuses(plan: Plan, own_numbers: list[str], errors: list[str]) -> list[str | None]:
    """Check the plan's statuses, adding to ``errors``; each status's forward target."""
    statuses = plan.effective_statuses()
    errors += _duplicates([s.key for s in statuses], "statuses", "key")
    if not any(s.behaviour == "ring" for s in statuses):
        errors.append('statuses: no status has behaviour = "ring" (the default, "Available")')
    users = {u.extension for u in plan.users}
    policy = plan.effective_policy()
    outbound = OutboundPolicy.create(
        policy.allowed_countries, policy.blocked_prefixes, policy.max_external_calls
    )
    targets: list[str | None] = []
    for index, status in enumerate(statuses):
        try:
            target = forward_target(
                status,
                country=plan.company.country,
                users=users,
                own_numbers=own_numbers,
                outbound=outbound,
            )
        except ValueError as exc:
            errors.append(f"statuses[{index}].forward_to: {exc}")
            target = None
        targets.append(target)
    return targets


def forward_target(
    status: StatusPlan,
    *,
    country: str,
    users: Container[str],
    own_numbers: Container[str],
    outbound: OutboundPolicy,
) -> str | None:
    """Where a status forwards calls: the extension of one of ``users``, or an E.164
    number, one of the company's ``own_numbers`` or one ``outbound`` allows; None when it
    does not forward. ValueError says what is wrong with its ``forward_to``."""
    target = status.forward_to
    if status.behaviour != "forward":
        if target is not None:
            raise ValueError('only with behaviour = "forward"')
        return None
    if target is None:
        raise ValueError('required with behaviour = "forward"')
    if _EXTENSION.match(target):
        if target not in users:
            raise ValueError(f"no user with extension {target!r}")
        return target
    number = normalize_number(target, country)
    if number not in own_numbers:
        if outbound.max_external_calls == 0:
            raise ValueError(f"{target!r}: policy.max_external_calls = 0 forbids it")
        decision = outbound.check(number, 0)
        if not decision.allowed:
            raise ValueError(f"{target!r}: {decision.reason}")
    return number


def _prompt_error(name: str) -> str | None:
    """Why `name` cannot be an IVR prompt, or None."""
    if name not in PROMPT_NAMES:
        return f"no prompt named {name!r}; prompts are {', '.join(PROMPT_NAMES)}"
    missing = missing_languages(name)
    if missing:
        return f"prompt {name!r} has no recording in {', '.join(missing)}"
    return None


def _check_groups(plan: Plan) -> list[str]:
    errors = _duplicates([g.extension for g in plan.groups], "groups", "extension")
    users = {u.extension for u in plan.users}
    menus = {i.extension for i in plan.ivrs}
    for index, group in enumerate(plan.groups):
        path = f"groups[{index}]"
        if group.extension in users:
            errors.append(f"{path}.extension: {group.extension!r} is a user's extension")
        if group.extension in menus:
            errors.append(f"{path}.extension: {group.extension!r} is an IVR's extension")
        seen: set[str] = set()
        for position, member in enumerate(group.members):
            if member in seen:
                errors.append(f"{path}.members[{position}]: duplicate {member!r}")
            elif member not in users:
                errors.append(f"{path}.members[{position}]: no user with extension {member!r}")
            seen.add(member)
    return errors


def _check_ivrs(plan: Plan) -> list[str]:
    errors = _duplicates([i.extension for i in plan.ivrs], "ivrs", "extension")
    users = {u.extension for u in plan.users} | {g.extension for g in plan.groups}
    menus = {i.extension: index for index, i in enumerate(plan.ivrs)}

    def target_error(menu: IvrPlan, target: str) -> str | None:
        if target == menu.extension:
            return f"{target!r} is this IVR itself"
        if target not in users and target not in menus:
            return f"no user, group or other IVR with extension {target!r}"
        return None

    for index, menu in enumerate(plan.ivrs):
        path = f"ivrs[{index}]"
        if menu.extension in users:
            errors.append(f"{path}.extension: {menu.extension!r} is a user's extension")
        if (problem := _prompt_error(menu.prompt)) is not None:
            errors.append(f"{path}.prompt: {problem}")
        for key, target in menu.keys.items():
            if key not in IVR_KEYS:
                errors.append(f'{path}.keys."{key}": not a phone key (0-9, *, #)')
            elif (problem := target_error(menu, target)) is not None:
                errors.append(f'{path}.keys."{key}": {problem}')
        if menu.fallback is not None and (problem := target_error(menu, menu.fallback)):
            errors.append(f"{path}.fallback: {problem}")
    # Fallbacks are taken without the caller doing anything: menus falling back to each
    # other in a ring would keep a silent caller forever.
    for index, menu in enumerate(plan.ivrs):
        seen = [menu.extension]
        step = menu.fallback
        while step is not None and step in menus and step not in seen:
            seen.append(step)
            step = plan.ivrs[menus[step]].fallback
        if step == menu.extension and len(seen) > 1:
            ring = " -> ".join([*seen, menu.extension])
            errors.append(f"ivrs[{index}].fallback: fallbacks loop ({ring})")
    return errors


def _read(plan_path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(plan_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"{plan_path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PlanError(f"{plan_path}: invalid TOML: {exc}") from None


def _validate(data: dict[str, Any]) -> _CheckedPlan:
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError("\n".join(_pydantic_errors(exc))) from None
    return _check(plan)


def load_plan(plan_path: Path) -> Plan:
    """Read and validate a plan file without touching the store (a dry run);
    PlanError lists every wrong entry."""
    return _validate(_read(plan_path)).plan


# -- secrets -------------------------------------------------------------------------------


def sip_ha1(algorithm: Literal["md5", "sha256"], extension: str, domain: str, password: str) -> str:
    """Digest HA1 = H(username:realm:password), username the extension, realm the domain."""
    return hashlib.new(algorithm, f"{extension}:{domain}:{password}".encode()).hexdigest()


def sip_secrets(extension: str, domain: str, sip_password: str) -> dict[str, str]:
    """A user's digest secrets (MD5 and SHA-256 HA1), the columns they are kept in."""
    return {
        "sip_ha1_md5": sip_ha1("md5", extension, domain, sip_password),
        "sip_ha1_sha256": sip_ha1("sha256", extension, domain, sip_password),
    }


def password_hash(current: str | None, password: str) -> str | None:
    """A new argon2 hash, or None when `current` already matches and is up to date.

    Hashes are salted, so re-hashing an unchanged password would look like a change and
    cost ~50 ms per user: verify first.
    """
    if current is not None:
        try:
            if _HASHER.verify(current, password) and not _HASHER.check_needs_rehash(current):
                return None
        except (VerificationError, InvalidHashError):
            pass
    return _HASHER.hash(password)


# -- applying ------------------------------------------------------------------------------


@dataclass
class KindReport:
    created: int = 0
    updated: int = 0
    removed: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)


@dataclass
class ProvisionReport:
    company: str
    domain: str
    company_created: bool = False
    company_updated: bool = False
    users: KindReport = field(default_factory=KindReport)
    trunks: KindReport = field(default_factory=KindReport)
    numbers: KindReport = field(default_factory=KindReport)
    ivrs: KindReport = field(default_factory=KindReport)
    groups: KindReport = field(default_factory=KindReport)
    statuses: KindReport = field(default_factory=KindReport)
    voicemail: KindReport = field(default_factory=KindReport)

    @property
    def changed(self) -> bool:
        return (
            self.company_created
            or self.company_updated
            or self.users.changed
            or self.trunks.changed
            or self.numbers.changed
            or self.ivrs.changed
            or self.groups.changed
            or self.statuses.changed
            or self.voicemail.changed
        )

    def __str__(self) -> str:
        state = (
            "created"
            if self.company_created
            else "updated"
            if self.company_updated
            else "unchanged"
        )
        lines = [f"company {self.company} ({self.domain}): {state}"]
        for kind in ("users", "trunks", "numbers", "ivrs", "groups", "statuses", "voicemail"):
            report: KindReport = getattr(self, kind)
            lines.append(
                f"{kind}: {report.created} created, {report.updated} updated, "
                f"{report.removed} removed"
            )
        lines.append("changes: applied" if self.changed else "changes: none")
        return "\n".join(lines)


_Row = TypeVar("_Row", bound=Base)


def assign(row: object, values: dict[str, Any]) -> bool:
    """Set the attributes that differ; True when any did."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def company_values(company: CompanyPlan, policy: PolicyPlan) -> dict[str, Any]:
    """The columns of a company row."""
    return {
        "name": company.name,
        "domain": company.domain,
        "country": company.country,
        "language": company.language,
        "recording_announcement": company.recording_announcement,
        "allowed_countries": policy.allowed_countries,
        "blocked_prefixes": policy.blocked_prefixes,
        "max_external_calls": policy.max_external_calls,
    }


def user_values(entry: UserProfile) -> dict[str, Any]:
    """The columns of a user row but the secrets (password_hash, sip_secrets)."""
    return {
        "name": entry.name,
        "extension": entry.extension,
        "email": entry.email,
        "role": entry.role,
    }


def trunk_values(entry: TrunkPlan, caller_id: str | None) -> dict[str, Any]:
    """The columns of a trunk row but its name and addresses (set_trunk_addresses);
    ``caller_id`` is the entry's, in E.164."""
    host, port = entry.address
    return {
        "host": host,
        "port": port,
        "transport": entry.transport,
        "username": entry.username,
        "password": entry.password,
        "register": entry.register_,
        "caller_id": caller_id,
    }


def set_trunk_addresses(trunk: Trunk, addresses: list[str]) -> bool:
    """Make the trunk's inbound addresses these; True when they changed."""
    if trunk.inbound_addresses == addresses:
        return False
    # Keep the rows of addresses that stay: the flush inserts before it deletes, so
    # re-creating one would hit the (trunk, address) unique constraint.
    kept = {a.address: a for a in trunk.addresses}
    trunk.addresses = [kept.get(a) or TrunkAddress(address=a) for a in addresses]
    return True


def status_values(entry: StatusPlan, position: int, target: str | None) -> dict[str, Any]:
    """The columns of a status row but its key; ``target`` is forward_target's."""
    return {
        "name": entry.name,
        "colour": entry.colour,
        "position": position,
        "behaviour": entry.behaviour,
        "forward_to": target,
        "pause_acd": entry.pause_acd,
    }


async def apply_plan(db: Database, plan_path: Path) -> ProvisionReport:
    """Make the company described by the plan file exist exactly as described.

    Raises PlanError, naming the entry, when the plan is invalid or conflicts with another
    company (an email or number already theirs); nothing is written then.
    """
    checked = _validate(_read(plan_path))
    plan = checked.plan
    report = ProvisionReport(company=plan.company.name, domain=plan.company.domain)
    async with db.session() as session:
        company = await repositories.company_by_domain(session, plan.company.domain)
        current_users = (
            {u.extension: u for u in await repositories.users(session, company.id)}
            if company
            else {}
        )
        await _check_conflicts(session, checked, company)
        # argon2 is slow on purpose: hash in threads, all users at once.
        hashes = await asyncio.gather(
            *(
                asyncio.to_thread(
                    password_hash,
                    current.password_hash if (current := current_users.get(u.extension)) else None,
                    u.password,
                )
                for u in plan.users
            )
        )
        company = await _apply_company(session, plan, company, report)
        await _apply_users(
            session, plan, company, current=current_users, hashes=hashes, report=report.users
        )
        await _apply_trunks(session, checked, company, report.trunks)
        await _apply_numbers(session, checked, company, report.numbers)
        await _apply_ivrs(session, plan, company, report.ivrs)
        await _apply_groups(session, plan, company, report.groups)
        await _apply_statuses(session, checked, company, report.statuses)
        await _apply_voicemail(session, plan, company, report.voicemail)
        if report.changed:
            # Running servers reload their in-memory directory when this moves.
            await repositories.bump_directory_revision(session)
        # Everything above is one transaction: leaving the block without this commit,
        # through any exception, rolls it all back.
        await session.commit()
    return report


async def _check_conflicts(
    session: AsyncSession, checked: _CheckedPlan, company: Company | None
) -> None:
    """Plan entries that collide with another company's rows."""
    errors: list[str] = []
    emails = [u.email for u in checked.plan.users]
    email_query = select(User.email).where(User.email.in_(emails))
    number_query = select(Number.number).where(Number.number.in_(checked.numbers))
    if company is not None:
        email_query = email_query.where(User.company_id != company.id)
        number_query = number_query.where(Number.company_id != company.id)
    if emails:
        taken = set((await session.execute(email_query)).scalars())
        errors += [
            f"users[{i}].email: {e!r} belongs to a user of another company"
            for i, e in enumerate(emails)
            if e in taken
        ]
    if checked.numbers:
        taken = set((await session.execute(number_query)).scalars())
        errors += [
            f"numbers[{i}].number: {n!r} belongs to another company"
            for i, n in enumerate(checked.numbers)
            if n in taken
        ]
    if errors:
        raise PlanError("\n".join(errors))


async def _apply_company(
    session: AsyncSession, plan: Plan, company: Company | None, report: ProvisionReport
) -> Company:
    values = company_values(plan.company, plan.effective_policy())
    if company is None:
        company = Company(**values)
        session.add(company)
        await session.flush()
        report.company_created = True
    else:
        report.company_updated = assign(company, values)
    return company


async def _remove_unwanted(
    session: AsyncSession,
    current: Mapping[str, Base],
    wanted: Container[str],
    report: KindReport,
) -> None:
    """Delete the rows (by their plan key) the plan no longer has."""
    for key, row in current.items():
        if key not in wanted:
            await session.delete(row)
            report.removed += 1


def _upsert(
    session: AsyncSession,
    current: Mapping[str, _Row],
    key: str,
    values: dict[str, Any],
    make: Callable[[str, dict[str, Any]], _Row],
    *,
    report: KindReport,
) -> None:
    """The row for ``key`` made (``make(key, values)``) or brought up to ``values``."""
    row = current.get(key)
    if row is None:
        session.add(make(key, values))
        report.created += 1
    elif assign(row, values):
        report.updated += 1


async def _apply_users(
    session: AsyncSession,
    plan: Plan,
    company: Company,
    *,
    current: dict[str, User],
    hashes: list[str | None],
    report: KindReport,
) -> None:
    await _remove_unwanted(session, current, {u.extension for u in plan.users}, report)
    # Emails are unique across rows: park the changing ones first so that two users
    # swapping addresses do not collide half-way through the flush.
    parked = False
    for entry in plan.users:
        user = current.get(entry.extension)
        if user is not None and user.email != entry.email:
            user.email = f"{user.id}@renaming.invalid"
            parked = True
    if parked or report.removed:
        await session.flush()
    domain = company.domain
    for entry, new_hash in zip(plan.users, hashes, strict=True):
        values = user_values(entry) | sip_secrets(entry.extension, domain, entry.sip_password)
        if new_hash is not None:
            values["password_hash"] = new_hash
        _upsert(
            session,
            current,
            entry.extension,
            values,
            lambda _, values: User(company_id=company.id, **values),
            report=report,
        )
    await session.flush()


async def _apply_trunks(
    session: AsyncSession, checked: _CheckedPlan, company: Company, report: KindReport
) -> None:
    current = {t.name: t for t in await repositories.trunks(session, company.id)}
    await _remove_unwanted(session, current, {t.name for t in checked.plan.trunks}, report)
    for entry, caller_id in zip(checked.plan.trunks, checked.caller_ids, strict=True):
        values = trunk_values(entry, caller_id)
        trunk = current.get(entry.name)
        if trunk is None:
            trunk = Trunk(company_id=company.id, name=entry.name, **values)
            trunk.addresses = [TrunkAddress(address=a) for a in entry.inbound_addresses]
            session.add(trunk)
            report.created += 1
            continue
        changed = assign(trunk, values)
        if set_trunk_addresses(trunk, entry.inbound_addresses) or changed:
            report.updated += 1
    await session.flush()


async def _apply_numbers(
    session: AsyncSession, checked: _CheckedPlan, company: Company, report: KindReport
) -> None:
    current = {n.number: n for n in await repositories.numbers(session, company.id)}
    routes = dict(zip(checked.numbers, (n.route for n in checked.plan.numbers), strict=True))
    await _remove_unwanted(session, current, routes, report)
    for number, route in routes.items():
        _upsert(
            session,
            current,
            number,
            {"route": route},
            lambda key, values: Number(company_id=company.id, number=key, **values),
            report=report,
        )
    await session.flush()


async def _apply_ivrs(
    session: AsyncSession, plan: Plan, company: Company, report: KindReport
) -> None:
    current = {m.extension: m for m in await repositories.ivr_menus(session, company.id)}
    await _remove_unwanted(session, current, {m.extension for m in plan.ivrs}, report)
    for entry in plan.ivrs:
        values: dict[str, Any] = {
            "name": entry.name,
            "prompt": entry.prompt,
            "language": entry.language,
            "timeout_seconds": float(entry.timeout),
            "attempts": entry.attempts,
            # A new dict: the JSON column notices replacement, not changes in place.
            "keys": dict(entry.keys),
            "fallback": entry.fallback,
        }
        _upsert(
            session,
            current,
            entry.extension,
            values,
            lambda key, values: IvrMenu(company_id=company.id, extension=key, **values),
            report=report,
        )
    await session.flush()


async def _apply_groups(
    session: AsyncSession, plan: Plan, company: Company, report: KindReport
) -> None:
    """Groups by extension, each with exactly the plan's members."""
    users = {u.extension: u.id for u in await repositories.users(session, company.id)}
    current = {g.extension: g for g in await repositories.groups(session, company.id)}
    await _remove_unwanted(session, current, {g.extension for g in plan.groups}, report)
    for entry in plan.groups:
        members = [users[member] for member in entry.members]
        group = current.get(entry.extension)
        if group is None:
            group = Group(
                company_id=company.id,
                extension=entry.extension,
                name=entry.name,
                members=[GroupMember(user_id=user_id) for user_id in members],
            )
            session.add(group)
            report.created += 1
            continue
        renamed = assign(group, {"name": entry.name})
        if set_group_members(group, members) or renamed:
            report.updated += 1
    await session.flush()


def set_group_members(group: Group, user_ids: list[int]) -> bool:
    """Make the group's members these users; True when they changed."""
    if sorted(group.member_ids) == sorted(user_ids):
        return False
    kept = {m.user_id: m for m in group.members}
    group.members = [kept.get(user_id) or GroupMember(user_id=user_id) for user_id in user_ids]
    return True


async def _apply_statuses(
    session: AsyncSession, checked: _CheckedPlan, company: Company, report: KindReport
) -> None:
    """Statuses by key; a removed status's users go back to the default (the foreign
    key's ON DELETE SET NULL)."""
    current = {s.key: s for s in await repositories.statuses(session, company.id)}
    await _remove_unwanted(session, current, {s.key for s in checked.statuses}, report)
    for position, (entry, target) in enumerate(
        zip(checked.statuses, checked.forward_targets, strict=True)
    ):
        _upsert(
            session,
            current,
            entry.key,
            status_values(entry, position, target),
            lambda key, values: Status(company_id=company.id, key=key, **values),
            report=report,
        )
    await session.flush()


async def _apply_voicemail(
    session: AsyncSession, plan: Plan, company: Company, report: KindReport
) -> None:
    """Box settings by user or group. A box is never removed with its entry (it holds
    messages): an owner without an entry gets the defaults back."""
    owners: dict[str, dict[str, int]] = {
        **{u.extension: {"user_id": u.id} for u in await repositories.users(session, company.id)},
        **{g.extension: {"group_id": g.id} for g in await repositories.groups(session, company.id)},
    }
    boxes = {
        (box.user_id, box.group_id): box
        for box in await session.scalars(
            select(VoicemailBox).where(VoicemailBox.company_id == company.id)
        )
    }
    entries = {v.extension: v for v in plan.voicemail}
    for extension, owner in owners.items():
        entry = entries.get(extension) or VoicemailPlan(extension=extension)
        box = boxes.get((owner.get("user_id"), owner.get("group_id")))
        if box is None and extension not in entries:
            continue
        values = box_values(entry, box.pin_hash if box is not None else None)
        if box is None:
            session.add(VoicemailBox(company_id=company.id, **owner, **values))
            report.created += 1
        elif assign(box, values):
            report.updated += 1
    await session.flush()


def box_values(entry: VoicemailSettings, current_pin_hash: str | None) -> dict[str, Any]:
    """The columns of a voicemail box row but its owner and greeting."""
    # An unchanged PIN keeps its hash (hashes are salted: re-hashing is a change).
    pin_hash = (
        None
        if entry.pin is None
        else password_hash(current_pin_hash, entry.pin) or current_pin_hash
    )
    return {
        "enabled": entry.enabled,
        "pin_hash": pin_hash,
        "send_email": entry.send_email,
        "email": entry.email,
        "attach_audio": entry.attach_audio,
        "max_seconds": entry.max_seconds,
    }


# -- reading -------------------------------------------------------------------------------


async def find_company(session: AsyncSession, domain_or_name: str) -> Company:
    """The company with that SIP domain, or else with that (unambiguous) name."""
    company = await repositories.company_by_domain(session, domain_or_name)
    if company is not None:
        return company
    result = await session.execute(select(Company).where(Company.name == domain_or_name))
    matches = list(result.scalars())
    if len(matches) == 1:
        return matches[0]
    if matches:
        domains = ", ".join(sorted(c.domain for c in matches))
        raise CompanyNotFoundError(
            f"several companies are named {domain_or_name!r}: use a domain ({domains})"
        )
    raise CompanyNotFoundError(f"no company with domain or name {domain_or_name!r}")


async def list_calls(
    db: Database, company_domain_or_name: str, limit: int = 100
) -> list[CallRecord]:
    """The company's most recent call records, newest first."""
    async with db.session() as session:
        company = await find_company(session, company_domain_or_name)
        return await repositories.call_records(session, company.id, limit)


async def list_recordings(
    db: Database, company_domain_or_name: str, call_record_id: int
) -> list[Recording]:
    """The recordings made during one of the company's calls, oldest first."""
    async with db.session() as session:
        company = await find_company(session, company_domain_or_name)
        return await repositories.recordings_of_call(session, company.id, call_record_id)
