"""DTLS-SRTP (RFC 5763, RFC 5764) for a WebRTC leg: the DTLS handshake over the media
port, the peer's certificate checked against the fingerprint its SDP announced, then the
SRTP keys exported from the handshake.

Sans-I/O, as ice_lite.py: ``DtlsSrtp`` takes the datagrams that arrive (``receive``) and
returns those to send; its owner calls ``on_timeout`` when ``timeout`` says (the DTLS
flights' retransmission). OpenSSL (through pyOpenSSL) runs the protocol on memory BIOs;
pylibsrtp protects and unprotects the media once the keys are known.
"""

from __future__ import annotations

import datetime
import hmac
from dataclasses import dataclass

import pylibsrtp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

# What WebRTC endpoints all support (RFC 8827 requires it).
_SRTP_PROFILE = b"SRTP_AES128_CM_SHA1_80"
_KEY_LENGTH, _SALT_LENGTH = 16, 14
_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"
# One handshake flight fits a datagram well under any path MTU of a LAN or the internet.
_MTU = 1200
_CERTIFICATE_DAYS = 30


def is_dtls(datagram: bytes) -> bool:
    """Whether a datagram on a media port is DTLS (RFC 7983: first byte 20-63)."""
    return bool(datagram) and 20 <= datagram[0] <= 63


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in digest)


@dataclass(frozen=True, slots=True)
class Certificate:
    """The server's self-signed DTLS certificate (WebRTC peers check its fingerprint,
    not a chain): made at start-up, shared by every leg."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def generate(cls) -> Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nuage")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=_CERTIFICATE_DAYS))
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @property
    def fingerprint(self) -> str:
        """The SDP a=fingerprint value's hash part (sha-256, colon-separated hex)."""
        return _colon_hex(self.certificate.fingerprint(hashes.SHA256()))

    def context(self) -> SSL.Context:
        context = SSL.Context(SSL.DTLS_METHOD)
        context.use_certificate(self.certificate)
        context.use_privatekey(self.key)
        # The peer's certificate is self-signed: asked for, then checked against the
        # fingerprint of its SDP once the handshake is done, not against a CA.
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *_: True)
        context.set_tlsext_use_srtp(_SRTP_PROFILE)
        context.set_options(SSL.OP_NO_QUERY_MTU)
        return context


class SrtpKeys:
    """Protects what we send and unprotects what we receive on one leg (RTP and RTCP,
    multiplexed on one port)."""

    def __init__(self, local: bytes, remote: bytes) -> None:
        """``local``/``remote``: key then salt, of our sending side and of the peer's."""
        profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        outbound = pylibsrtp.Policy(
            key=local, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile
        )
        inbound = pylibsrtp.Policy(
            key=remote, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile
        )
        self._outbound = pylibsrtp.Session(policy=outbound)
        self._inbound = pylibsrtp.Session(policy=inbound)

    def protect(self, packet: bytes) -> bytes:
        return self._outbound.protect(packet)

    def protect_rtcp(self, packet: bytes) -> bytes:
        return self._outbound.protect_rtcp(packet)

    def unprotect(self, packet: bytes) -> bytes:
        """The RTP packet; pylibsrtp.Error when it is not authentic or replayed."""
        return self._inbound.unprotect(packet)

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        return self._inbound.unprotect_rtcp(packet)


class DtlsError(Exception):
    pass


class DtlsSrtp:
    """One leg's DTLS association. ``client``: we start the handshake (our SDP said
    setup:active); else the peer does (setup:passive, what an answer to a browser
    says). ``remote_fingerprint``: the peer's SDP a=fingerprint (algorithm, value)."""

    def __init__(
        self, certificate: Certificate, *, client: bool, remote_fingerprint: tuple[str, str]
    ) -> None:
        algorithm, value = remote_fingerprint
        if algorithm.lower() != "sha-256":
            raise DtlsError(f"fingerprint algorithm {algorithm!r} not supported (sha-256)")
        self._expected = value.upper()
        self._client = client
        self._connection = SSL.Connection(certificate.context(), None)
        self._connection.set_ciphertext_mtu(_MTU)
        if client:
            self._connection.set_connect_state()
        else:
            self._connection.set_accept_state()
        self.keys: SrtpKeys | None = None
        self.failure: str | None = None

    @property
    def established(self) -> bool:
        return self.keys is not None

    def start(self) -> list[bytes]:
        """The first flight when we are the client; nothing otherwise."""
        return self._step() if self._client else []

    def receive(self, datagram: bytes) -> list[bytes]:
        """Feed a DTLS datagram from the peer; what to send back."""
        if self.failure is not None:
            return []
        self._connection.bio_write(datagram)
        if self.keys is not None:
            # Established: only alerts (close_notify) or a retransmitted last flight come.
            try:
                self._connection.recv(_MTU)
            except SSL.ZeroReturnError:
                self.failure = "closed by the peer"
            except (SSL.WantReadError, SSL.Error):
                pass
            return self._outgoing()
        return self._step()

    def timeout(self) -> float | None:
        """Seconds until ``on_timeout`` is due (a flight to resend); None: none."""
        if self.keys is not None or self.failure is not None:
            return None
        return self._connection.DTLSv1_get_timeout()

    def on_timeout(self) -> list[bytes]:
        if self.keys is None and self.failure is None:
            self._connection.DTLSv1_handle_timeout()
        return self._outgoing()

    def close(self) -> list[bytes]:
        """A close_notify alert to send, once established."""
        if self.keys is None or self.failure is not None:
            return []
        try:
            self._connection.shutdown()
        except SSL.Error:
            return []
        self.failure = "closed"
        return self._outgoing()

    def _step(self) -> list[bytes]:
        try:
            self._connection.do_handshake()
        except SSL.WantReadError:
            return self._outgoing()
        except SSL.Error as exc:
            self.failure = f"handshake failed: {exc}"
            return self._outgoing()
        self._established()
        return self._outgoing()

    def _established(self) -> None:
        certificate = self._connection.get_peer_certificate(as_cryptography=True)
        if certificate is None:
            self.failure = "the peer sent no certificate"
            return
        digest = certificate.fingerprint(hashes.SHA256())
        if not hmac.compare_digest(_colon_hex(digest), self._expected):
            self.failure = "the peer's certificate does not match its SDP fingerprint"
            return
        if self._connection.get_selected_srtp_profile() != _SRTP_PROFILE:
            self.failure = "no SRTP profile agreed"
            return
        material = self._connection.export_keying_material(
            _EXPORTER_LABEL, 2 * (_KEY_LENGTH + _SALT_LENGTH)
        )
        client_key = material[:_KEY_LENGTH]
        server_key = material[_KEY_LENGTH : 2 * _KEY_LENGTH]
        client_salt = material[2 * _KEY_LENGTH : 2 * _KEY_LENGTH + _SALT_LENGTH]
        server_salt = material[2 * _KEY_LENGTH + _SALT_LENGTH :]
        client, server = client_key + client_salt, server_key + server_salt
        self.keys = SrtpKeys(client, server) if self._client else SrtpKeys(server, client)

    def _outgoing(self) -> list[bytes]:
        datagrams = []
        while True:
            try:
                data = self._connection.bio_read(_MTU * 4)
            except SSL.WantReadError:
                break
            if not data:
                break
            datagrams.append(data)
        return datagrams
