"""`qatysu enroll` against the real portal under uvicorn on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
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
    code, out, err = enroll(run, site, live.url, "qen_nonsense", "--insecure")
    assert (code, out) == (1, "")
    # A line a technician acts on, not "HTTP 401 unknown: ... (unknown token)".
    assert err == (
        f"qatysu: error: {live.url}: the portal does not know this enrollment token (mistyped?)\n"
    )
    assert load_config(site.config).portal.device_id == ""
    code, out, err = enroll(run, site, live.url, "qen_nonsense", "--insecure", "--json")
    assert code == 1 and "HTTP" not in err
    assert json.loads(out) == {
        "error": "unknown_token",
        "message": f"{live.url}: the portal does not know this enrollment token (mistyped?)",
    }


def test_enroll_twice_changes_nothing_and_says_so(
    site: Site, run: Run, portal: Portal, live: LivePortal
) -> None:
    tok = token(portal)
    code, out, _ = enroll(run, site, live.url, tok, "--insecure")
    assert code == 0
    first = load_config(site.config).portal.device_id
    # The hint works as typed, like init's.
    assert out.splitlines()[-1] == (
        f"next: qatysu --config {site.config} doctor; systemctl restart qatysu-agent"
    )
    before = site.config.read_text()
    # The same command again (as the help promises): nothing changed, exit 0.
    code, out, err = enroll(run, site, live.url, token(portal), "--insecure")
    assert (code, err) == (0, "")
    assert out == (
        f"already enrolled as device {first} of center c1 with {live.url}: "
        "nothing changed (the token stays unused)\n"
    )
    assert site.config.read_text() == before
    code, out, _ = enroll(run, site, live.url, tok, "--insecure", "--json")
    assert code == 0 and json.loads(out)["already_enrolled"] is True
    # Another portal needs --force.
    code, _, err = enroll(run, site, "https://other.example", tok)
    assert code == 2 and f"already enrolled as {first} with {live.url}; " in err
    # --force with the same token and key: the portal answers the same device.
    assert enroll(run, site, live.url, tok, "--insecure", "--force")[0] == 0
    assert load_config(site.config).portal.device_id == first
    # --force with a new token for a key the portal has: one line, nothing written.
    code, out, err = enroll(run, site, live.url, token(portal), "--insecure", "--force")
    assert (code, out) == (1, "")
    assert err == (
        f"qatysu: error: {live.url}: the portal already has this device key, enrolled with "
        "another token: a key enrolls once (after a lost key, 'qatysu init --new-key' "
        "comes first)\n"
    )
    assert site.config.read_text() == before


def test_enroll_help_promises_what_it_does(run: Run) -> None:
    text = " ".join(run("enroll", "--help").out.split())
    assert "harmless" not in text
    assert "it changes nothing and says so" in text and "init --new-key" in text


def test_enroll_unreachable_portal(site: Site, run: Run) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = enroll(run, site, f"http://127.0.0.1:{port}", "qen_x", "--insecure")
    assert code == 1 and f"cannot reach the portal: http://127.0.0.1:{port}: ConnectError" in err


def test_enroll_without_a_key(site: Site, run: Run) -> None:
    (site.state_dir / "device.key").unlink()
    code, _, err = enroll(run, site, "https://portal.example", "qen_x")
    assert code == 2
    assert err == (
        f"qatysu: error: {site.state_dir / 'device.key'}: no device key: "
        f"run 'qatysu --config {site.config} init --new-key', then enroll\n"
    )
    code, out, _ = enroll(run, site, "https://portal.example", "qen_x", "--json")
    assert code == 2 and json.loads(out) == {"error": "no_key", "message": err[15:-1]}


def test_enroll_json_errors_before_the_portal(site: Site, run: Run) -> None:
    code, out, err = enroll(run, site, "ftp://portal.example", "qen_x", "--json")
    assert code == 2 and json.loads(out)["error"] == "invalid"
    assert err == f"qatysu: error: {json.loads(out)['message']}\n"
    site.config.write_text("[devize]\n")
    code, out, _ = enroll(run, site, "https://portal.example", "qen_x", "--json")
    assert code == 2 and "unknown section 'devize'" in json.loads(out)["message"]


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
