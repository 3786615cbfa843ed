"""The call engine's WebRTC parties (browsers running the web app): one ``BrowserEnd``
per relay side that faces a browser. It turns the plain SDP the rest of the call speaks
into the browser's flavour (media/webrtc/sdp.py) with this side's ICE-lite credentials,
and once the browser's own SDP is known (its offer, or its answer to ours) it starts
the side's WebRTC port: ICE checks answered, DTLS with the fingerprint the browser
announced, then SRTP."""

from __future__ import annotations

import logging
from collections.abc import Callable

from nuage.media import sdp
from nuage.media.engine import MediaSide
from nuage.media.webrtc.dtls import Certificate, DtlsError, DtlsSrtp
from nuage.media.webrtc.ice_lite import IceLiteResponder, new_credentials
from nuage.media.webrtc.sdp import (
    LocalParameters,
    RemoteParameters,
    mids_of,
    our_setup,
    remote_parameters,
    to_plain,
    to_webrtc,
)
from nuage.pbx.offer_answer import SdpRejected

log = logging.getLogger(__name__)


class BrowserEnd:
    """A relay side facing a browser."""

    def __init__(
        self, side: MediaSide, certificate: Certificate, on_failure: Callable[[str], None]
    ) -> None:
        self._side = side
        self._certificate = certificate
        # The call's: it changes when the browser moves to another call with its side.
        self.on_failure = on_failure
        ufrag, pwd = new_credentials()
        self.local = LocalParameters(ufrag, pwd, certificate.fingerprint)
        self._remote: RemoteParameters | None = None
        # Our a=setup: "actpass" while we offer, our chosen role once the browser spoke.
        self._setup = "actpass"
        # The browser's sections' mids once it sent SDP; ours (one audio section) before.
        self._mids: list[str | None] | None = None

    def from_browser(self, description: sdp.SessionDescription) -> sdp.SessionDescription:
        """The browser's SDP (offer or answer) as plain SDP; the first one starts the
        side's WebRTC port. SdpRejected when it lacks what DTLS-SRTP needs, or a later
        one changes the DTLS peer (not supported: the call keeps its first one)."""
        remote = self.check(description)
        self._mids = mids_of(description)
        if self._remote is None:
            self._start(remote)
        elif remote.fingerprint != self._remote.fingerprint:
            raise SdpRejected("A new DTLS fingerprint mid-call is not supported")
        return to_plain(description)

    def check(self, description: sdp.SessionDescription) -> RemoteParameters:
        """What the browser's SDP says of its ICE and DTLS; SdpRejected when it lacks
        what DTLS-SRTP needs. Changes nothing."""
        try:
            return remote_parameters(description)
        except sdp.SdpError as exc:
            raise SdpRejected(str(exc)) from None

    def stop(self) -> None:
        """Another party takes this side: its socket speaks plain RTP again."""
        self._side.use_plain()

    def to_browser(self, description: sdp.SessionDescription) -> sdp.SessionDescription:
        """Anchored plain SDP in the browser's flavour, with our credentials."""
        mids = self._mids
        if mids is None or len(mids) != len(description.media):
            mids = [str(index) for index in range(len(description.media))]
        return to_webrtc(description, self.local, setup=self._setup, mids=mids)

    def _failed(self, reason: str) -> None:
        self.on_failure(reason)

    def _start(self, remote: RemoteParameters) -> None:
        self._setup, client = our_setup(remote.setup)
        try:
            dtls = DtlsSrtp(self._certificate, client=client, remote_fingerprint=remote.fingerprint)
        except DtlsError as exc:
            raise SdpRejected(str(exc)) from None
        ice = IceLiteResponder(self.local.ufrag, self.local.pwd, remote_ufrag=remote.ufrag)
        self._side.use_webrtc(ice, dtls, on_failure=self._failed)
        self._remote = remote
