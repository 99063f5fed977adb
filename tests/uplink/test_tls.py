"""TLS is verified: a portal with a certificate from a city CA the device does not
trust is unreachable, until that CA is given as ``portal.ca_file``."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.exceptions import ConfigError, PortalUnreachable
from agent.protocol import public_key_b64
from agent.uplink.client import PortalClient
from portal.app import create_app
from portal.registry import create_enroll_token
from tests.uplink.conftest import Rig


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _city_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Almaty city test CA"))
        .issuer_name(_name("Almaty city test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("portal"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (folder / "ca.pem", folder / "portal.pem", folder / "portal.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def tls_portal(rig: Rig, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The rig's portal also served over TLS; yields its https URL and the CA file."""
    ca, cert, key = _city_pki(tmp_path)
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see LiveServer
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(rig.portal.settings, portal=rig.portal),
        log_level="warning",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(2000):
        if server.started:
            break
        started.wait(0.01)
    try:
        yield f"https://127.0.0.1:{sock.getsockname()[1]}", ca
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _token(rig: Rig) -> str:
    return create_enroll_token(rig.portal.engine, "c1", 3_600_000, now=rig.portal.clock())


def test_unknown_ca_is_refused_even_with_insecure(rig: Rig, tls_portal: tuple[str, Path]) -> None:
    url, _ = tls_portal
    key = public_key_b64(rig.key)
    for insecure in (False, True):  # --insecure allows plain http, never an unchecked cert
        with (
            PortalClient(url, insecure=insecure) as client,
            pytest.raises(PortalUnreachable, match="certificate verify failed"),
        ):
            client.enroll(_token(rig), key, "t", {})


def test_city_ca_file_makes_the_portal_trusted(rig: Rig, tls_portal: tuple[str, Path]) -> None:
    url, ca = tls_portal
    with PortalClient(url, ca_file=str(ca)) as client:
        assert client.cursor(rig.device_id).status == 200


def test_unreadable_ca_file_names_the_key(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"portal\.ca_file"):
        PortalClient("https://portal.example", ca_file=str(bogus))
