from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nuage.certificates import self_signed
from nuage.config import Config, ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nuage.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    config = load_config(None)
    assert config == Config.default()
    server = config.server
    assert (server.sip_host, server.sip_port) == ("0.0.0.0", 5060)
    assert (server.http_host, server.http_port) == ("0.0.0.0", 8080)
    assert (server.rtp_port_min, server.rtp_port_max) == (10000, 20000)
    assert server.data_dir == Path("data")
    assert server.public_address is None
    assert server.ring_timeout == 30
    assert (server.tls_cert, server.tls_key) == (None, None)
    assert config.database_url == "sqlite+aiosqlite:///data/nuage.db"
    assert config.log.level == "info"


def test_full_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [server]
        sip_host = "192.0.2.10"
        sip_port = 5070
        http_host = "::"
        http_port = 8443
        rtp_port_min = 30000
        rtp_port_max = 30100
        data_dir = "/var/lib/nuage"
        public_address = "pbx.example.net"
        ring_timeout = 20
        tcp_idle_timeout = 90.5

        [database]
        url = "postgresql+asyncpg://nuage@db/nuage"

        [log]
        level = "DEBUG"
        """,
    )
    config = load_config(path)
    assert config.server.sip_port == 5070
    assert config.server.http_host == "::"
    assert config.server.data_dir == Path("/var/lib/nuage")
    assert config.server.public_address == "pbx.example.net"
    assert config.server.ring_timeout == 20.0
    assert config.server.tcp_idle_timeout == 90.5
    assert config.database_url == "postgresql+asyncpg://nuage@db/nuage"
    assert config.log.level == "debug"


def test_database_defaults_into_data_dir(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[server]\ndata_dir = "/srv/pbx"\n'))
    assert config.database_url == "sqlite+aiosqlite:////srv/pbx/nuage.db"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nsip_prot = 5060\n", "server.sip_prot: unknown key"),
        ("[sever]\n", "sever: unknown key"),
        ("[server]\nrtp_port_min = 10001\n", "server.rtp_port_min: must be even"),
        (
            "[server]\nrtp_port_min = 20000\n",
            "server.rtp_port_max: must be greater than rtp_port_min (20000)",
        ),
        (
            "[server]\nrtp_port_min = 5000\nrtp_port_max = 6000\n",
            "server.rtp_port_max: RTP range 5000-6000 includes sip_port (5060)",
        ),
        ("[server]\nsip_port = 70000\n", "server.sip_port: must be between 1 and 65535"),
        ("[server]\nhttp_port = 0\n", "server.http_port: must be between 1 and 65535"),
        ("[server]\nhttp_port = 5060\n", "server.http_port: must differ from sip_port (5060)"),
        ('[server]\nsip_port = "5060"\n', "server.sip_port: Input should be a valid integer"),
        ("[server]\nring_timeout = 0\n", "server.ring_timeout: Input should be greater than 0"),
        ("[server]\ntcp_idle_timeout = -1\n", "server.tcp_idle_timeout: Input should be greater"),
        ('[server]\nsip_host = "not a host"\n', "server.sip_host: 'not a host' is not an IP"),
        ('[server]\npublic_address = "0.0.0.0"\n', "server.public_address: must be an address"),
        ('[database]\nurl = "mysql://x/y"\n', "database.url: unsupported database URL"),
        ('[database]\nurl = "postgresql://x/y"\n', "database.url: unsupported database URL"),
        ('[log]\nlevel = "verbose"\n', "log.level: Input should be 'debug'"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert str(info.value).startswith(message)


def test_every_error_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[server]\nsip_port = 0\nfoo = 1\n[log]\nlevel = 3\n"))
    lines = str(info.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["server.sip_port", "server.foo", "log.level"]


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[server\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_documented_examples_load(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    examples = [block.split("```", 1)[0] for block in doc.split("```toml\n")[1:]]
    assert len(examples) == 2
    for example in examples:
        load_config(write(tmp_path, example))


def test_digest_algorithms_default_and_choice() -> None:
    assert Config.default().server.digest_algorithms == ["MD5"]
    chosen = Config.from_mapping({"server": {"digest_algorithms": ["SHA-256", "MD5"]}})
    assert chosen.server.digest_algorithms == ["SHA-256", "MD5"]
    with pytest.raises(ConfigError, match=r"server\.digest_algorithms"):
        Config.from_mapping({"server": {"digest_algorithms": ["SHA-1"]}})
    with pytest.raises(ConfigError, match=r"server\.digest_algorithms"):
        Config.from_mapping({"server": {"digest_algorithms": []}})


def test_smtp_section() -> None:
    assert Config.default().smtp is None
    smtp = Config.from_mapping(
        {"smtp": {"host": "mail.example.net", "from_address": "Nuage <vm@example.net>"}}
    ).smtp
    assert smtp is not None
    assert (smtp.tls, smtp.server_port, smtp.username, smtp.password, smtp.timeout) == (
        "starttls",
        587,
        None,
        None,
        30.0,
    )
    for tls, port in (("tls", 465), ("none", 25)):
        config = Config.from_mapping(
            {"smtp": {"host": "192.0.2.25", "tls": tls, "from_address": "vm@example.net"}}
        )
        assert config.smtp is not None and config.smtp.server_port == port
    full = Config.from_mapping(
        {
            "smtp": {
                "host": "smtp.example.net",
                "port": 2525,
                "username": "nuage",
                "password": "s3cret",
                "from_address": "vm@example.net",
                "timeout": 10,
            }
        }
    ).smtp
    assert full is not None and full.server_port == 2525
    assert full.password is not None and full.password.get_secret_value() == "s3cret"
    # The password never shows in a log line or an error.
    assert "s3cret" not in repr(full)


@pytest.mark.parametrize(
    ("smtp", "message"),
    [
        ({"from_address": "vm@example.net"}, "smtp.host: Field required"),
        ({"host": "mail.example.net"}, "smtp.from_address: Field required"),
        ({"host": "a b", "from_address": "vm@example.net"}, "smtp.host: 'a b' is not an IP"),
        ({"host": "m", "from_address": "vm"}, "smtp.from_address: 'vm' is not one mail address"),
        (
            {"host": "m", "from_address": "a@example.net, b@example.net"},
            "smtp.from_address: 'a@example.net, b@example.net' is not one mail address",
        ),
        (
            {"host": "m", "from_address": "vm@example.net\r\nBcc: x@example.net"},
            "smtp.from_address:",
        ),
        ({"host": "m", "from_address": "vm@x", "tls": "ssl"}, "smtp.tls: Input should be 'none'"),
        ({"host": "m", "from_address": "vm@x", "port": 0}, "smtp.port: must be between 1"),
        ({"host": "m", "from_address": "vm@x", "timeout": 0}, "smtp.timeout: Input should be"),
        ({"host": "m", "from_address": "vm@x", "user": "u"}, "smtp.user: unknown key"),
        ({"host": "m", "from_address": "vm@x", "username": "u"}, "smtp: username and password"),
    ],
)
def test_smtp_errors_name_the_key(smtp: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping({"smtp": smtp})
    assert str(info.value).startswith(message)


def tls_files(tmp_path: Path) -> tuple[str, str]:
    cert, key = self_signed(tmp_path, ["127.0.0.1"])
    return str(cert), str(key)


def test_tls_certificate_and_key(tmp_path: Path) -> None:
    cert, key = tls_files(tmp_path)
    server = Config.from_mapping({"server": {"tls_cert": cert, "tls_key": key}}).server
    assert (server.tls_cert, server.tls_key) == (Path(cert), Path(key))


def test_tls_errors_name_the_key(tmp_path: Path) -> None:
    cert, key = tls_files(tmp_path)
    other = tmp_path / "other-key.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    absent = tmp_path / "absent.pem"
    cases: list[tuple[dict[str, object], str]] = [
        ({"tls_cert": cert}, "server.tls_key: missing: tls_cert and tls_key go together"),
        ({"tls_key": key}, "server.tls_key: set without tls_cert: the two go together"),
        (
            {"tls_cert": str(absent), "tls_key": key},
            f"server.tls_cert: cannot read {absent}: No such file or directory",
        ),
        (
            {"tls_cert": str(tmp_path), "tls_key": key},
            f"server.tls_cert: cannot read {tmp_path}: Is a directory",
        ),
        ({"tls_cert": key, "tls_key": key}, f"server.tls_cert: {key} holds no PEM certificate"),
        (
            {"tls_cert": cert, "tls_key": str(absent)},
            f"server.tls_key: cannot read {absent}: No such file or directory",
        ),
        ({"tls_cert": cert, "tls_key": cert}, f"server.tls_key: {cert} holds no PEM private key"),
        (
            {"tls_cert": cert, "tls_key": str(encrypted)},
            f"server.tls_key: {encrypted} is encrypted; give a key without a passphrase",
        ),
        (
            {"tls_cert": cert, "tls_key": str(other)},
            f"server.tls_key: {other} is not the key of the certificate in tls_cert ({cert})",
        ),
    ]
    for server, message in cases:
        with pytest.raises(ConfigError) as info:
            Config.from_mapping({"server": server})
        assert str(info.value) == message
