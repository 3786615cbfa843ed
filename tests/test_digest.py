"""Digest authentication: the RFC's own vectors, nonce signing, staleness and replays."""

from __future__ import annotations

import pytest

from nuage.sip.digest import (
    AuthOutcome,
    Credentials,
    DigestAuthenticator,
    authorization_for,
    compute_ha1,
    expected_response,
    parse_auth_params,
    parse_credentials,
)


def test_rfc2617_md5_vector() -> None:
    ha1 = compute_ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    credentials = Credentials(
        username="Mufasa",
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        uri="/dir/index.html",
        response="",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert expected_response(credentials, "GET", ha1) == "6629fae49393a05397450978507c4ef1"


def test_rfc7616_sha256_vector() -> None:
    algorithm = "SHA-256"
    expected = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    ha1 = compute_ha1(algorithm, "Mufasa", "http-auth@example.org", "Circle of Life")
    credentials = Credentials(
        username="Mufasa",
        realm="http-auth@example.org",
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        uri="/dir/index.html",
        response="",
        algorithm=algorithm,
        qop="auth",
        nc="00000001",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert expected_response(credentials, "GET", ha1) == expected


def test_auth_params_quoting() -> None:
    params = parse_auth_params('realm="a, \\"b\\"", qop=auth ,nc=00000001')
    assert params == {"realm": 'a, "b"', "qop": "auth", "nc": "00000001"}


def _answer(challenge: str, algorithm: str, password: str, nc: str = "00000001") -> Credentials:
    params = parse_auth_params(challenge.partition(" ")[2])
    unsigned = Credentials(
        username="1001",
        realm=params["realm"],
        nonce=params["nonce"],
        uri="sip:acme.example",
        response="",
        algorithm=algorithm,
        qop="auth",
        nc=nc,
        cnonce="c0ffee",
    )
    ha1 = compute_ha1(algorithm, "1001", params["realm"], password)
    header = (
        f'Digest username="1001", realm="{unsigned.realm}", nonce="{unsigned.nonce}", '
        f'uri="{unsigned.uri}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="c0ffee", '
        f'response="{expected_response(unsigned, "REGISTER", ha1)}"'
    )
    return parse_credentials(header)


@pytest.mark.parametrize(("index", "algorithm"), [(0, "MD5"), (1, "SHA-256")])
def test_challenge_and_verify(index: int, algorithm: str) -> None:
    auth = DigestAuthenticator(b"secret", nonce_lifetime=60)
    challenge = auth.challenges("acme.example", now=1000.0)[index]
    assert f"algorithm={algorithm}" in challenge
    ha1 = compute_ha1(algorithm, "1001", "acme.example", "sip-secret")
    good = _answer(challenge, algorithm, "sip-secret")
    assert auth.verify(good, "REGISTER", "acme.example", ha1, now=1001.0) is AuthOutcome.OK
    # The same nonce count again is a replay.
    assert auth.verify(good, "REGISTER", "acme.example", ha1, now=1002.0) is AuthOutcome.STALE
    wrong = _answer(challenge, algorithm, "not-the-password", nc="00000002")
    assert auth.verify(wrong, "REGISTER", "acme.example", ha1, now=1002.0) is AuthOutcome.FAILED
    later = _answer(challenge, algorithm, "sip-secret", nc="00000003")
    assert auth.verify(later, "REGISTER", "acme.example", ha1, now=1100.0) is AuthOutcome.STALE


def test_foreign_nonce_and_realm_fail() -> None:
    ours = DigestAuthenticator(b"secret")
    theirs = DigestAuthenticator(b"other secret")
    challenge = theirs.challenges("acme.example", now=10.0)[0]
    ha1 = compute_ha1("MD5", "1001", "acme.example", "sip-secret")
    forged = _answer(challenge, "MD5", "sip-secret")
    assert ours.verify(forged, "REGISTER", "acme.example", ha1, now=11.0) is AuthOutcome.FAILED
    genuine = _answer(ours.challenges("acme.example", now=10.0)[0], "MD5", "sip-secret")
    assert ours.verify(genuine, "REGISTER", "other.example", ha1, now=11.0) is AuthOutcome.FAILED


def test_malformed_credentials_rejected() -> None:
    with pytest.raises(ValueError, match="scheme"):
        parse_credentials("Basic dXNlcjpwYXNz")
    with pytest.raises(ValueError, match="lack"):
        parse_credentials('Digest username="1001", realm="x"')
    with pytest.raises(ValueError, match="algorithm"):
        parse_credentials(
            'Digest username="a", realm="r", nonce="n", uri="u", response="r", algorithm=SHA-1'
        )
    with pytest.raises(ValueError, match="unterminated"):
        parse_credentials('Digest username="a')


def test_challenges_follow_the_configured_algorithms() -> None:
    only_md5 = DigestAuthenticator(b"s", algorithms=["MD5"]).challenges("r", now=1.0)
    assert len(only_md5) == 1 and "algorithm=MD5" in only_md5[0]
    both = DigestAuthenticator(b"s", algorithms=["SHA-256", "MD5"]).challenges("r", now=1.0)
    assert ["SHA-256" in both[0], "MD5" in both[1]] == [True, True]
    with pytest.raises(ValueError, match="algorithms"):
        DigestAuthenticator(b"s", algorithms=["SHA-1"])


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_authorization_for_satisfies_our_own_authenticator(algorithm: str) -> None:
    auth = DigestAuthenticator(b"secret", algorithms=[algorithm])
    challenges = auth.challenges("carrier.example", now=1000.0)
    ha1 = compute_ha1(algorithm, "acme", "carrier.example", "trunk-secret")
    first = authorization_for(challenges, "REGISTER", "sip:carrier.example", "acme", "trunk-secret")
    credentials = parse_credentials(first)
    assert credentials.algorithm == algorithm and credentials.qop == "auth"
    assert credentials.uri == "sip:carrier.example" and credentials.nc == "00000001"
    outcome = auth.verify(credentials, "REGISTER", "carrier.example", ha1, now=1001.0)
    assert outcome is AuthOutcome.OK
    second = parse_credentials(
        authorization_for(
            challenges, "REGISTER", "sip:carrier.example", "acme", "trunk-secret", nc=2
        )
    )
    assert auth.verify(second, "REGISTER", "carrier.example", ha1, now=1002.0) is AuthOutcome.OK
    wrong = parse_credentials(
        authorization_for(challenges, "INVITE", "sip:carrier.example", "acme", "trunk-secret", nc=3)
    )
    assert auth.verify(wrong, "REGISTER", "carrier.example", ha1, now=1003.0) is AuthOutcome.FAILED


def test_authorization_for_picks_the_first_supported_challenge() -> None:
    challenges = [
        'Digest realm="r", nonce="n1", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth-int, auth", opaque="o\\"x"',
        'Digest realm="r", nonce="n3", algorithm=MD5',
    ]
    credentials = parse_credentials(authorization_for(challenges, "INVITE", "sip:1@r", "u", "p"))
    assert (credentials.nonce, credentials.algorithm, credentials.qop) == ("n2", "SHA-256", "auth")
    assert credentials.opaque == 'o"x'
    assert credentials.cnonce


def test_authorization_for_without_qop_uses_rfc2069_response() -> None:
    header = authorization_for('Digest realm="r", nonce="n"', "INVITE", "sip:1@r", "u", "p")
    credentials = parse_credentials(header)
    assert credentials.qop is None and credentials.nc is None and credentials.cnonce is None
    assert credentials.response == expected_response(
        credentials, "INVITE", compute_ha1("MD5", "u", "r", "p")
    )


def test_authorization_for_refuses_what_it_cannot_answer() -> None:
    for challenges in (
        ['Basic realm="r"'],
        ['Digest realm="r", nonce="n", algorithm=MD5-sess'],
        ['Digest realm="r", nonce="n", qop="auth-int"'],
        ['Digest realm="r"'],
        [],
    ):
        with pytest.raises(ValueError, match="no digest challenge"):
            authorization_for(challenges, "INVITE", "sip:1@r", "u", "p")
