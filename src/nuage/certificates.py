"""A self-signed TLS certificate for `nuage demo --tls`.

Browsers give a page the microphone only in a secure context: HTTPS, or the machine's
own loopback. A phone on the LAN opening the demo's web app therefore needs HTTPS, and a
demo has no certificate from an authority: it makes one for the names and addresses
phones may use to reach this machine, and keeps it in its data directory, so that a
phone that accepted (or installed) it once keeps trusting it across restarts.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nuage.sip.transport import primary_ip

__all__ = ["CERT_FILE", "KEY_FILE", "local_names", "self_signed"]

CERT_FILE = "tls-cert.pem"
KEY_FILE = "tls-key.pem"
# Apple's platforms refuse server certificates valid for more than 825 days.
_VALIDITY = datetime.timedelta(days=365)
# A kept certificate is made anew this long before it expires, not in the middle of a demo.
_RENEW_BEFORE = datetime.timedelta(days=30)


def local_names() -> list[str]:
    """This machine's host name and addresses, as phones on its network may reach it:
    loopback, the addresses of its default routes, those its host name resolves to, and
    ``<host name>.local`` (mDNS) for a host name without a domain."""
    hostname = socket.gethostname()
    names = ["localhost", hostname]
    if "." not in hostname:
        names.append(f"{hostname}.local")
    names += ["127.0.0.1", "::1", primary_ip(socket.AF_INET), primary_ip(socket.AF_INET6)]
    try:
        infos = socket.getaddrinfo(hostname, None, type=socket.SOCK_STREAM)
    except OSError:
        infos = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        # A link-local address needs its interface in a URL: no browser is given one.
        if not address.is_link_local:
            names.append(str(address))
    return list(dict.fromkeys(names))


def self_signed(directory: Path, names: Iterable[str]) -> tuple[Path, Path]:
    """The certificate and key files in ``directory`` for ``names`` (host names or IP
    addresses): those already there if they cover every name and are not about to
    expire, else new ones."""
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    wanted = [_general_name(name) for name in names]
    if _usable(cert_path, key_path, wanted):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Nuage demo")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
        # An end entity: Firefox refuses a CA certificate used as a server's.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _usable(cert_path: Path, key_path: Path, wanted: list[x509.GeneralName]) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm, x509.ExtensionNotFound):
        return False
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    # A run stopped between the two writes leaves a key that is not the certificate's.
    matches = key.public_key().public_bytes(*public) == certificate.public_key().public_bytes(
        *public
    )
    expires = certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return matches and expires > _RENEW_BEFORE and set(wanted) <= set(names.value)
