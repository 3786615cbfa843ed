"""SIP dialogs (RFC 3261 section 12): the state two user agents share for one call or subscription.

Pure data and logic, no I/O. A UAS builds its side with :meth:`Dialog.from_uas` from the
request and the 1xx/2xx carrying its To tag; a UAC with :meth:`Dialog.from_uac` from its
request and a 1xx/2xx carrying the remote To tag. :meth:`Dialog.create_request` and
:meth:`Dialog.create_ack` build in-dialog requests (without Via: the endpoint adds it);
:meth:`Dialog.handle_request` and :meth:`Dialog.handle_response` keep CSeq order, the remote
target and the route set up to date.

Incoming messages are looked up by :func:`request_dialog_id` / :func:`response_dialog_id`,
which give the same ``(call_id, local_tag, remote_tag)`` triple as :attr:`Dialog.id`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from nuage.sip.message import URI, Address, CSeq, Headers, Request, Response
from nuage.sip.peer import Peer

# Requests that may change the remote target (RFC 3261 12.2, RFC 3311, RFC 6665, RFC 3515).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})

DialogId = tuple[str, str, str]


class DialogState(StrEnum):
    EARLY = "early"
    CONFIRMED = "confirmed"


def request_dialog_id(request: Request) -> DialogId:
    """The id of the dialog an incoming request belongs to, seen from its recipient."""
    return (request.call_id, request.to.tag or "", request.from_.tag or "")


def response_dialog_id(response: Response) -> DialogId:
    """The id of the dialog an incoming response belongs to, seen from the UAC."""
    return (response.call_id, response.from_.tag or "", response.to.tag or "")


def _tagged(address: Address, tag: str) -> str:
    return str(Address(address.uri, address.display_name, {**address.params, "tag": tag}))


@dataclass(slots=True)
class Dialog:
    """One side of a dialog. ``local_seq`` is the CSeq of the last request we sent in it.

    ``peer`` is where in-dialog requests go (it keeps a stream connection); the TU may
    change it when the remote target moves. ``local_contact`` goes into target-refresh
    requests we send.
    """

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: Address
    remote_uri: Address
    remote_target: URI
    local_seq: int
    remote_seq: int | None
    route_set: list[Address] = field(default_factory=list)
    secure: bool = False
    peer: Peer | None = None
    local_contact: Address | None = None
    state: DialogState = DialogState.CONFIRMED

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uas(cls, request: Request, response: Response, *, peer: Peer | None = None) -> Dialog:
        """Our side as the UAS: ``response`` is the 1xx/2xx we sent, with our To tag."""
        to = response.to
        if not to.tag:
            raise ValueError("a dialog-creating response needs a To tag")
        from_ = request.from_
        contacts = request.contacts
        if not contacts:
            raise ValueError("a dialog-creating request needs a Contact")
        response_contacts = response.contacts
        return cls(
            call_id=request.call_id,
            local_tag=to.tag,
            remote_tag=from_.tag or "",
            local_uri=_without_tag(to),
            remote_uri=_without_tag(from_),
            remote_target=contacts[0].uri,
            local_seq=0,
            remote_seq=request.cseq.seq,
            # 12.1.1: Record-Route in the request's order.
            route_set=request.record_routes,
            secure=request.uri.scheme == "sips",
            peer=peer,
            local_contact=response_contacts[0] if response_contacts else None,
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
        )

    @classmethod
    def from_uac(cls, request: Request, response: Response, *, peer: Peer | None = None) -> Dialog:
        """Our side as the UAC: ``request`` is the INVITE (or SUBSCRIBE...) we sent."""
        to = response.to
        if not to.tag:
            raise ValueError("a dialog-creating response needs a To tag")
        from_ = request.from_
        contacts = response.contacts
        if not contacts:
            raise ValueError("a dialog-creating response needs a Contact")
        own_contacts = request.contacts
        return cls(
            call_id=request.call_id,
            local_tag=from_.tag or "",
            remote_tag=to.tag,
            local_uri=_without_tag(from_),
            remote_uri=_without_tag(to),
            remote_target=contacts[0].uri,
            local_seq=request.cseq.seq,
            remote_seq=None,
            # 12.1.2: Record-Route of the response, reversed.
            route_set=list(reversed(response.record_routes)),
            secure=request.uri.scheme == "sips",
            peer=peer,
            local_contact=own_contacts[0] if own_contacts else None,
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
        )

    def matches(self, message: Request | Response) -> bool:
        """Whether an incoming request, or a response to our request, is in this dialog."""
        if isinstance(message, Request):
            return request_dialog_id(message) == self.id
        return response_dialog_id(message) == self.id

    # -- sending --

    def create_request(
        self, method: str, *, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> Request:
        """An in-dialog request (RFC 3261 12.2.1.1) with the next local CSeq; no Via yet."""
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} takes the CSeq of its INVITE; use create_ack / CANCEL")
        self.local_seq += 1
        return self._build(method, self.local_seq, body, headers)

    def create_ack(
        self, invite_cseq: int, *, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> Request:
        """The ACK for a 2xx to the INVITE that had CSeq ``invite_cseq`` (RFC 3261 13.2.2.4)."""
        return self._build("ACK", invite_cseq, body, headers)

    def _build(
        self, method: str, seq: int, body: bytes, extra: Iterable[tuple[str, str]]
    ) -> Request:
        headers = Headers()
        uri = self.remote_target
        routes = [str(route) for route in self.route_set]
        if self.route_set and "lr" not in self.route_set[0].uri.params:
            # A strict router first (RFC 3261 12.2.1.1): it becomes the Request-URI and the
            # remote target goes last in Route.
            first = self.route_set[0].uri
            uri = URI(first.scheme, first.user, first.password, first.host, first.port)
            routes = [*routes[1:], f"<{self.remote_target}>"]
        headers.add("Max-Forwards", "70")
        for route in routes:
            headers.add("Route", route)
        headers.add("From", _tagged(self.local_uri, self.local_tag))
        headers.add("To", _tagged(self.remote_uri, self.remote_tag))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", str(CSeq(seq, method)))
        if method in TARGET_REFRESH and self.local_contact is not None:
            headers.add("Contact", str(self.local_contact))
        for name, value in extra:
            headers.add(name, value)
        return Request(method, uri, headers, body)

    # -- receiving --

    def handle_request(self, request: Request) -> int | None:
        """Account for an incoming in-dialog request; a status to reject it with, or None.

        A CSeq lower than the last one is out of order (500, RFC 3261 12.2.2). ACK and
        CANCEL reuse their INVITE's number, so they neither advance nor fail the order.
        """
        method = request.method
        if method not in ("ACK", "CANCEL"):
            seq = request.cseq.seq
            if self.remote_seq is not None and seq < self.remote_seq:
                return 500
            self.remote_seq = seq
        if method in TARGET_REFRESH:
            contacts = request.contacts
            if contacts:
                self.remote_target = contacts[0].uri
        return None

    def handle_response(self, response: Response) -> None:
        """A response to a request we sent in this dialog: confirm, refresh the target."""
        if not 200 <= response.status < 300:
            return
        method = response.cseq.method
        if method in TARGET_REFRESH:
            contacts = response.contacts
            if contacts:
                self.remote_target = contacts[0].uri
        if self.state is DialogState.EARLY and method == "INVITE":
            # 13.2.2.4: the 2xx confirms the early dialog and recomputes its route set.
            self.state = DialogState.CONFIRMED
            self.route_set = list(reversed(response.record_routes))


def _without_tag(address: Address) -> Address:
    params = {name: value for name, value in address.params.items() if name != "tag"}
    return Address(address.uri, address.display_name, params)
