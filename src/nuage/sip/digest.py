"""HTTP digest authentication for SIP (RFC 3261 22, RFC 7616, RFC 8760): MD5 and SHA-256.

Nonces are stateless: a timestamp and random bytes signed with a server secret, so any
process holding the secret can check them and a restart does not invalidate them. A nonce
older than its lifetime is answered with ``stale=true`` (the client retries without asking
its user again). Nonce counts seen with qop=auth are remembered in a bounded table to
refuse replays.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import os
import re
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

ALGORITHMS: dict[str, str] = {"MD5": "md5", "SHA-256": "sha256"}


def digest_hex(algorithm: str, text: str) -> str:
    return hashlib.new(ALGORITHMS[algorithm], text.encode()).hexdigest()


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password), what the store keeps instead of the SIP password."""
    return digest_hex(algorithm, f"{username}:{realm}:{password}")


class AuthOutcome(enum.Enum):
    OK = "ok"
    STALE = "stale"  # right password, expired nonce: challenge again with stale=true
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Credentials:
    """The parameters of one ``Authorization: Digest ...`` header."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None


# One auth-param and the separators before it: name = token or quoted-string (RFC 7616).
_AUTH_PARAM_RE = re.compile(r'[ \t,]*([^=\s,]*)[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^,]*))', re.S)
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)


def parse_auth_params(text: str) -> dict[str, str]:
    """Parse ``a=b, c="d,e"`` auth-params; names lowercased, quotes and escapes removed."""
    params: dict[str, str] = {}
    index, length = 0, len(text)
    while index < length:
        match = _AUTH_PARAM_RE.match(text, index)
        if match is None:
            rest = text[index:]
            if not rest.strip(" \t,"):
                break
            if "=" not in rest:
                raise ValueError(f"auth-param without '=' at {rest!r}")
            raise ValueError(f"malformed auth-param at {rest!r}")
        name, quoted, token = match.groups()
        if not name:
            raise ValueError("empty auth-param name")
        if quoted is not None:
            value = _QUOTED_PAIR_RE.sub(r"\1", quoted) if "\\" in quoted else quoted
        elif token.startswith('"'):
            raise ValueError("unterminated quoted string in auth-params")
        else:
            value = token.strip()
        params[name.lower()] = value
        index = match.end()
    return params


def parse_credentials(header_value: str) -> Credentials:
    """Parse an Authorization / Proxy-Authorization value; ValueError when it is not digest."""
    scheme, _, rest = header_value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ValueError(f"unsupported authorization scheme {scheme!r}")
    params = parse_auth_params(rest)
    try:
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        return Credentials(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"].lower(),
            algorithm=algorithm,
            qop=params.get("qop"),
            nc=params.get("nc"),
            cnonce=params.get("cnonce"),
            opaque=params.get("opaque"),
        )
    except KeyError as missing:
        raise ValueError(f"digest credentials lack {missing.args[0]!r}") from None


def expected_response(credentials: Credentials, method: str, ha1: str) -> str:
    """The response a client knowing ``ha1`` computes (RFC 7616 3.4.1, qop auth or none)."""
    algorithm = credentials.algorithm
    ha2 = digest_hex(algorithm, f"{method}:{credentials.uri}")
    if credentials.qop:
        return digest_hex(
            algorithm,
            f"{ha1}:{credentials.nonce}:{credentials.nc}:{credentials.cnonce}:"
            f"{credentials.qop}:{ha2}",
        )
    return digest_hex(algorithm, f"{ha1}:{credentials.nonce}:{ha2}")


class DigestAuthenticator:
    """Issues challenges and checks credentials; knows nothing of users (the caller gives HA1)."""

    def __init__(
        self,
        secret: bytes,
        *,
        algorithms: Sequence[str] = ("MD5", "SHA-256"),
        nonce_lifetime: float = 300.0,
        replay_table_size: int = 65536,
    ) -> None:
        unknown = [a for a in algorithms if a not in ALGORITHMS]
        if unknown or not algorithms:
            raise ValueError(f"digest algorithms must be among {list(ALGORITHMS)}: {unknown}")
        self._algorithms = tuple(algorithms)
        self._secret = secret
        self._nonce_lifetime = nonce_lifetime
        self._replay_table_size = replay_table_size
        self._last_nonce_count: OrderedDict[str, int] = OrderedDict()

    def make_nonce(self, now: float) -> str:
        payload = struct.pack(">d", now) + os.urandom(12)
        signature = hmac.new(self._secret, payload, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(payload + signature).decode().rstrip("=")

    def _nonce_time(self, nonce: str) -> float | None:
        """The time a nonce was issued, or None when we did not issue it."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:
            return None
        if len(raw) != 32:
            return None
        payload, signature = raw[:20], raw[20:]
        expected = hmac.new(self._secret, payload, hashlib.sha256).digest()[:12]
        if not hmac.compare_digest(signature, expected):
            return None
        issued: float = struct.unpack(">d", payload[:8])[0]
        return issued

    def issued(self, nonce: str) -> bool:
        """Whether this secret signed ``nonce`` (however old it is)."""
        return self._nonce_time(nonce) is not None

    def challenges(self, realm: str, now: float, *, stale: bool = False) -> list[str]:
        """WWW-Authenticate values, one per algorithm in the configured order (RFC 8760:
        a client answers the first it supports)."""
        nonce = self.make_nonce(now)
        stale_param = ", stale=true" if stale else ""
        return [
            f'Digest realm="{realm}", nonce="{nonce}", algorithm={algorithm}, qop="auth"'
            f"{stale_param}"
            for algorithm in self._algorithms
        ]

    def verify(
        self, credentials: Credentials, method: str, realm: str, ha1: str, now: float
    ) -> AuthOutcome:
        """Check ``credentials`` for ``method`` against the user's HA1 for its algorithm."""
        if credentials.realm != realm:
            return AuthOutcome.FAILED
        issued = self._nonce_time(credentials.nonce)
        if issued is None or issued > now + 5:
            return AuthOutcome.FAILED
        if credentials.qop not in (None, "auth"):
            return AuthOutcome.FAILED
        expected = expected_response(credentials, method, ha1)
        if not hmac.compare_digest(expected, credentials.response):
            return AuthOutcome.FAILED
        if now - issued > self._nonce_lifetime:
            return AuthOutcome.STALE
        if credentials.qop and not self._fresh_nonce_count(credentials):
            return AuthOutcome.STALE
        return AuthOutcome.OK

    def _fresh_nonce_count(self, credentials: Credentials) -> bool:
        """A replayed (nonce, nc) pair is refused; counts must grow per nonce."""
        try:
            count = int(credentials.nc or "", 16)
        except ValueError:
            return False
        key = f"{credentials.nonce}:{credentials.cnonce}"
        last = self._last_nonce_count.get(key)
        if last is not None and count <= last:
            return False
        self._last_nonce_count[key] = count
        self._last_nonce_count.move_to_end(key)
        while len(self._last_nonce_count) > self._replay_table_size:
            self._last_nonce_count.popitem(last=False)
        return True


def authorization_for(
    challenges: str | Sequence[str],
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    nc: int = 1,
) -> str:
    """The ``Digest ...`` credentials answering a server's challenge, as a client.

    ``challenges`` are the WWW-Authenticate or Proxy-Authenticate values of one response,
    one per header line; the first we can answer is used (RFC 8760 3.3: a server lists
    its preferred algorithm first). ``nc`` counts the requests made with one nonce.
    ValueError when none is a digest challenge with an algorithm and qop we support.
    """
    values = [challenges] if isinstance(challenges, str) else challenges
    for value in values:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            continue
        try:
            params = parse_auth_params(rest)
        except ValueError:
            continue
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in ALGORITHMS or "nonce" not in params:
            continue
        offered = {q.strip().lower() for q in params["qop"].split(",")} if "qop" in params else None
        # A server offering only auth-int wants a body hash we do not compute.
        if offered is not None and "auth" not in offered:
            continue
        qop = None if offered is None else "auth"
        realm = params.get("realm", "")
        unsigned = Credentials(
            username=username,
            realm=realm,
            nonce=params["nonce"],
            uri=uri,
            response="",
            algorithm=algorithm,
            qop=qop,
            nc=f"{nc:08x}" if qop else None,
            cnonce=os.urandom(8).hex() if qop else None,
        )
        response = expected_response(
            unsigned, method, compute_ha1(algorithm, username, realm, password)
        )
        parts = [
            f"username={_quoted(username)}",
            f"realm={_quoted(realm)}",
            f"nonce={_quoted(unsigned.nonce)}",
            f"uri={_quoted(uri)}",
            f'response="{response}"',
            f"algorithm={algorithm}",
        ]
        if qop:
            parts += [f"qop={qop}", f"nc={unsigned.nc}", f'cnonce="{unsigned.cnonce}"']
        if "opaque" in params:
            parts.append(f"opaque={_quoted(params['opaque'])}")
        return "Digest " + ", ".join(parts)
    raise ValueError("no digest challenge with a supported algorithm and qop")


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
