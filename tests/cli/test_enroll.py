"""`qatysu enroll` against the real portal under uvicorn on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket

from agent.config import load_config
from agent.protocol import public_key_b64
from portal.registry import create_enroll_token
from portal.state import Portal
from tests.cli.conftest import Run, Site
from tests.daemon.support import LivePortal
from tests.support.tools import missing


def token(portal: Portal) -> str:
    return create_enroll_token(portal.engine, "c1", 3_600_000, now=portal.clock())


def enroll(run: Run, site: Site, url: str, tok: str, *extra: str) -> tuple[int, str, str]:
    r = run("--config", site.config, "enroll", "--portal", url, "--token", tok, *extra)
    return r.code, r.out, r.err


def test_enroll_pins_the_portal_key_and_keeps_the_comments(
    site: Site, run: Run, portal: Portal, live: LivePortal
) -> None:
    before = site.config.read_text()
    code, out, err = enroll(run, site, live.url, token(portal), "--insecure", "--json")
    assert code == 0, err
    import json

    answer = json.loads(out)
    config = load_config(site.config)
    assert config.portal.url == live.url
    assert config.portal.device_id == answer["device_id"] and answer["device_id"]
    assert config.portal.center_id == "c1"
    assert config.portal.public_key == public_key_b64(portal.key)
    text = site.config.read_text()
    for line in before.splitlines():
        if line.startswith("#"):
            assert line in text  # every comment survives


def test_enroll_refuses_plain_http_without_insecure(site: Site, run: Run) -> None:
    before = site.config.read_text()
    code, _, err = enroll(run, site, "http://portal.example", "qen_x")
    assert code == 2
    assert err.strip() == (
        "qatysu: error: --portal: http://portal.example is plain http; "
        "use https, or --insecure for a lab portal"
    )
    assert site.config.read_text() == before
    code, _, err = enroll(run, site, "ftp://portal.example", "qen_x")
    assert code == 2 and "is not an https:// URL" in err


def test_enroll_unknown_token_is_a_failure_naming_the_portal(
    site: Site, run: Run, live: LivePortal
) -> None:
    code, _, err = enroll(run, site, live.url, "qen_nonsense", "--insecure")
    assert code == 1
    assert live.url in err and "401" in err and "(unknown token)" in err
    assert load_config(site.config).portal.device_id == ""


def test_enroll_twice_needs_force(site: Site, run: Run, portal: Portal, live: LivePortal) -> None:
    tok = token(portal)
    assert enroll(run, site, live.url, tok, "--insecure")[0] == 0
    first = load_config(site.config).portal.device_id
    code, _, err = enroll(run, site, live.url, tok, "--insecure")
    assert code == 1 and f"already enrolled as {first} (use --force" in err
    # the same token and key again gets the same answer from the portal
    assert enroll(run, site, live.url, tok, "--insecure", "--force")[0] == 0
    assert load_config(site.config).portal.device_id == first


def test_enroll_unreachable_portal(site: Site, run: Run) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = enroll(run, site, f"http://127.0.0.1:{port}", "qen_x", "--insecure")
    assert code == 1 and f"http://127.0.0.1:{port}: ConnectError" in err


def test_enroll_without_a_key(site: Site, run: Run) -> None:
    (site.state_dir / "device.key").unlink()
    code, _, err = enroll(run, site, "https://portal.example", "qen_x")
    assert code == 1
    assert f"{site.state_dir / 'device.key'}: no device key (run 'qatysu init')" in err


def test_enroll_https_with_an_untrusted_certificate_fails(site: Site, run: Run) -> None:
    """A TLS server whose certificate nobody signed: refused, nothing written."""
    import ssl
    import subprocess
    import threading

    cert, key = site.root / "cert.pem", site.root / "key.pem"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ed25519",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
        ],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        missing("openssl cannot make a test certificate here")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            with conn, contextlib.suppress(ssl.SSLError, OSError):
                context.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        code, _, err = enroll(run, site, f"https://127.0.0.1:{port}", "qen_x")
    finally:
        server.close()
        thread.join(5)
    assert code == 1 and "CERTIFICATE_VERIFY_FAILED" in err
    assert load_config(site.config).portal.device_id == ""
