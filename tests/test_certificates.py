"""The demo's self-signed certificate: made for the machine's names, kept across runs, made
anew when it no longer fits."""

from __future__ import annotations

import socket
from pathlib import Path

from cryptography import x509

from nuage.certificates import local_names, self_signed


def alt_names(cert: Path) -> list[str]:
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in names]


def test_made_for_the_machine_and_kept(tmp_path: Path) -> None:
    names = local_names()
    assert {"localhost", socket.gethostname(), "127.0.0.1", "::1"} <= set(names)
    cert, key = self_signed(tmp_path, names)
    assert alt_names(cert) == names
    assert key.stat().st_mode & 0o777 == 0o600
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # A phone that trusted it keeps trusting it: a later run finds the same files.
    pem = cert.read_bytes(), key.read_bytes()
    assert self_signed(tmp_path, ["127.0.0.1", "localhost"]) == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == pem


def test_made_anew_for_a_new_address_or_a_lost_key(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, ["127.0.0.1"])
    first = cert.read_bytes()
    self_signed(tmp_path, ["127.0.0.1", "192.0.2.7"])
    assert cert.read_bytes() != first
    assert alt_names(cert) == ["127.0.0.1", "192.0.2.7"]
    second = cert.read_bytes()
    key.write_text("not a key")
    self_signed(tmp_path, ["127.0.0.1"])
    assert cert.read_bytes() != second
