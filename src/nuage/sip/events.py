"""SIP-specific event notification (RFC 6665): the headers of SUBSCRIBE and NOTIFY.

Pure functions, no state: the Event header of a SUBSCRIBE (:func:`parse_event`), the
Subscription-State of a NOTIFY (:func:`active_state`, :func:`terminated_state`) and
whether a request's Accept header takes a body type (:func:`accepts`). The bodies that
event packages carry are in event_bodies.py; subscriptions themselves belong to the TU.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from nuage.sip.grammar import TOKEN_RE, SipSyntaxError, split_comma_list
from nuage.sip.message import Request


@dataclass(frozen=True, slots=True)
class EventType:
    """An Event header: the package ("dialog", "presence") and its ``id`` parameter,
    which tells apart several subscriptions to one package in one dialog."""

    package: str
    id: str | None = None

    def __str__(self) -> str:
        return self.package if self.id is None else f"{self.package};id={self.id}"


def parse_event(value: str) -> EventType:
    """Parse ``event-type *( ;event-param )`` (RFC 6665 8.2.1); parameters other than
    ``id`` are ignored, as no package here defines any."""
    package, _, rest = value.strip().partition(";")
    package = package.strip()
    if not TOKEN_RE.fullmatch(package):
        raise SipSyntaxError(f"bad event type {package!r}")
    event_id: str | None = None
    for param in rest.split(";") if rest else ():
        name, equals, param_value = param.partition("=")
        name, param_value = name.strip().lower(), param_value.strip()
        if not TOKEN_RE.fullmatch(name) or (equals and not TOKEN_RE.fullmatch(param_value)):
            raise SipSyntaxError(f"bad Event parameter {param.strip()!r}")
        if name == "id":
            event_id = param_value
    return EventType(package, event_id)


class TerminationReason(StrEnum):
    """Why a subscription ended (RFC 6665 4.1.3): tells the subscriber whether and when
    to subscribe again."""

    DEACTIVATED = "deactivated"
    PROBATION = "probation"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    GIVEUP = "giveup"
    NORESOURCE = "noresource"
    INVARIANT = "invariant"


def active_state(expires: int) -> str:
    """The Subscription-State of a NOTIFY in a live subscription: seconds it has left."""
    return f"active;expires={max(0, expires)}"


def terminated_state(reason: TerminationReason) -> str:
    """The Subscription-State of the last NOTIFY of a subscription."""
    return f"terminated;reason={reason}"


def accepts(request: Request, content_type: str) -> bool:
    """Whether ``request`` takes a body of ``content_type`` (RFC 3261 20.1): no Accept
    header means the package's default format, which is the one we send."""
    values = request.headers.values("Accept")
    if not values:
        return True
    wanted = content_type.lower()
    family = wanted.split("/", 1)[0] + "/*"
    for value in values:
        for element in split_comma_list(value):
            media_range = element.split(";", 1)[0].strip().lower()
            if media_range in (wanted, family, "*/*"):
                return True
    return False
