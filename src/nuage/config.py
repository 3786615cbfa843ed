"""Server configuration: a TOML file validated into typed, immutable settings.

Start-up must stop on any mistake in the file, with a message that names the key, so
every section forbids unknown keys and every value is checked here rather than at first use.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nuage.mail.address import mail_address

__all__ = [
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "LogConfig",
    "RedisConfig",
    "ServerConfig",
    "SmtpConfig",
    "load_config",
]

# RFC 1123 host names; a trailing dot is not allowed because the value ends up in SIP URIs.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)

# The only drivers the store is written and tested for; anything else would fail later,
# at the first query, far from the key that caused it.
_DATABASE_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message names the key."""


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return bool(_HOSTNAME.match(value))
    return True


def _check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be between 1 and 65535")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=True)


class ServerConfig(_Section):
    sip_host: str = "0.0.0.0"
    sip_port: int = 5060
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    rtp_port_min: int = 10000
    rtp_port_max: int = 20000
    # Relative paths are taken from the working directory of the process.
    data_dir: Path = Field(default=Path("./data"), strict=False)
    public_address: str | None = None
    ring_timeout: float = Field(default=30.0, gt=0)
    # A call whose media stops for this long is hung up; 0 turns the check off.
    media_timeout: float = Field(default=60.0, ge=0)
    tcp_idle_timeout: float = Field(default=300.0, gt=0)
    # Offered in this order in every challenge. SHA-256 is off by default: some deployed
    # phones (baresip 1.0 / libre) fail on a challenge whose algorithm they do not know
    # instead of skipping it, as RFC 8760 asks.
    # pydantic copies a mutable default per instance.
    digest_algorithms: list[Literal["MD5", "SHA-256"]] = Field(default=["MD5"], min_length=1)
    # PEM files; with both, the HTTP port serves HTTPS (and WSS), which browsers require
    # before they give a page the microphone.
    tls_cert: Path | None = Field(default=None, strict=False)
    tls_key: Path | None = Field(default=None, strict=False)

    @field_validator("sip_host", "http_host")
    @classmethod
    def _bind_host(cls, value: str) -> str:
        if not _is_host(value):
            raise ValueError(f"{value!r} is not an IP address or host name")
        return value

    @field_validator("public_address")
    @classmethod
    def _public_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _is_host(value):
            raise ValueError(f"{value!r} is not an IP address or host name")
        try:
            unspecified = ipaddress.ip_address(value).is_unspecified
        except ValueError:
            unspecified = False
        if unspecified:
            # Peers would send their media and requests to "nowhere".
            raise ValueError("must be an address peers can reach, not an unspecified address")
        return value

    @field_validator("sip_port", "http_port", "rtp_port_min", "rtp_port_max")
    @classmethod
    def _port(cls, value: int) -> int:
        return _check_port(value)

    @field_validator("http_port")
    @classmethod
    def _http_port(cls, value: int, info: ValidationInfo) -> int:
        # SIP listens on TCP as well, so the two cannot share a port.
        if value == info.data.get("sip_port"):
            raise ValueError(f"must differ from sip_port ({value})")
        return value

    @field_validator("rtp_port_min")
    @classmethod
    def _rtp_min(cls, value: int) -> int:
        # RTP takes the even port and RTCP the next odd one (RFC 3550 section 11).
        if value % 2:
            raise ValueError("must be even")
        return value

    @field_validator("rtp_port_max")
    @classmethod
    def _rtp_max(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("rtp_port_min")
        if low is None:
            return value
        if value <= low:
            raise ValueError(f"must be greater than rtp_port_min ({low})")
        sip_port = info.data.get("sip_port")
        if sip_port is not None and low <= sip_port <= value:
            raise ValueError(f"RTP range {low}-{value} includes sip_port ({sip_port})")
        return value

    @field_validator("tls_cert")
    @classmethod
    def _tls_cert(cls, value: Path | None) -> Path | None:
        if value is not None:
            _read_certificate(value)
        return value

    @field_validator("tls_key")
    @classmethod
    def _tls_key(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if "tls_cert" not in info.data:
            return value  # tls_cert is invalid, and reported as such
        cert = info.data["tls_cert"]
        if cert is None:
            if value is not None:
                raise ValueError("set without tls_cert: the two go together")
            return None
        if value is None:
            raise ValueError("missing: tls_cert and tls_key go together")
        key = _read_private_key(value)
        if _public_der(key.public_key()) != _public_der(_read_certificate(cert).public_key()):
            raise ValueError(f"{value} is not the key of the certificate in tls_cert ({cert})")
        return value


def _read_pem(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_certificate(path: Path) -> x509.Certificate:
    """The first certificate of a PEM file (the server's; intermediates may follow)."""
    data = _read_pem(path)
    try:
        return x509.load_pem_x509_certificates(data)[0]
    except ValueError:
        raise ValueError(f"{path} holds no PEM certificate") from None


def _read_private_key(path: Path) -> PrivateKeyTypes:
    data = _read_pem(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        # The server starts unattended: nobody is there to type a passphrase.
        raise ValueError(f"{path} is encrypted; give a key without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"{path} holds no PEM private key") from None


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class DatabaseConfig(_Section):
    # None until Config resolves it against server.data_dir; always set on a loaded Config.
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, _ = value.partition("://")
        if not sep or scheme not in _DATABASE_SCHEMES:
            allowed = ", ".join(f"{s}://" for s in _DATABASE_SCHEMES)
            raise ValueError(f"unsupported database URL {value!r}; use one of {allowed}")
        return value


class RedisConfig(_Section):
    # None: events stay within this process (one node).
    url: str | None = None
    # Put before every key, so that several installations can share one Redis.
    key_prefix: str = Field(default="nuage:", min_length=1, max_length=64)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, _ = value.partition("://")
        if not sep or scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL {value!r}; use redis://, rediss:// or unix://")
        return value


# The usual port of each way of securing SMTP: implicit TLS (RFC 8314), submission with
# STARTTLS (RFC 6409), plain relay.
_SMTP_PORTS = {"tls": 465, "starttls": 587, "none": 25}


class SmtpConfig(_Section):
    """The mail server voicemail notifications go through; no section: no mail."""

    host: str
    # None: the usual port of `tls`.
    port: int | None = None
    tls: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_address: str
    timeout: float = Field(default=30.0, gt=0, le=600)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _is_host(value):
            raise ValueError(f"{value!r} is not an IP address or host name")
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int | None) -> int | None:
        return None if value is None else _check_port(value)

    @field_validator("from_address")
    @classmethod
    def _from_address(cls, value: str) -> str:
        if not _is_host(mail_address(value).domain):
            raise ValueError(f"{value!r} is not one mail address")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> SmtpConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    @property
    def server_port(self) -> int:
        return self.port if self.port is not None else _SMTP_PORTS[self.tls]


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class Config(_Section):
    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    redis: RedisConfig = RedisConfig()
    smtp: SmtpConfig | None = None
    log: LogConfig = LogConfig()

    def model_post_init(self, context: Any, /) -> None:
        if self.database.url is None:
            url = f"sqlite+aiosqlite:///{self.server.data_dir / 'nuage.db'}"
            # Frozen model: the default depends on another section, so it is filled in once here.
            object.__setattr__(self, "database", DatabaseConfig(url=url))

    @property
    def database_url(self) -> str:
        assert self.database.url is not None  # set by model_post_init
        return self.database.url

    @classmethod
    def default(cls) -> Config:
        return cls()

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Config:
        """Validate already-parsed TOML; raises ConfigError naming the first bad keys."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        else:
            message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{key}: {message}")
    return "\n".join(lines)


def load_config(path: Path | None) -> Config:
    """Read and validate the TOML file at path; with no path, the defaults."""
    if path is None:
        return Config.default()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return Config.from_mapping(data)
