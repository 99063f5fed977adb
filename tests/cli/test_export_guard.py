"""`sudo qatysu export` through the daemon copies only a bundle the daemon may name:
a plain regular file in the outbox, owned by the buffer's owner. A compromised
agent answering another path must get nothing read out and nothing deleted."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import public_key_b64
from tests.cli.conftest import Run, Site
from tests.cli.daemon_stub import daemon_side

AGENT = 65534
SECRET = b"root:x:0:0:root:/root:/bin/bash\n"
NAME = "qatysu-dev-1-1-3.json"


@pytest.fixture
def enrolled(site: Site, run: Run) -> Site:
    for key, value in (
        ("portal.url", "https://portal.test"),
        ("portal.public_key", public_key_b64(Ed25519PrivateKey.generate())),
        ("portal.device_id", "dev-1"),
    ):
        made = run("--config", site.config, "config", "set", key, value)
        assert made.code == 0, made.err
    (site.state_dir / "outbox").mkdir(parents=True, exist_ok=True)
    return site


def _secret(site: Site) -> Path:
    """A root-owned file outside the outbox, as /etc/shadow would be."""
    path = site.root / "etc" / "passwd"
    path.write_bytes(SECRET)
    return path


def _dot_dot(site: Site) -> str:
    _secret(site)
    return f"{site.state_dir}/outbox/../../etc/passwd"


def _symlink(site: Site) -> str:
    link = site.state_dir / "outbox" / NAME
    link.symlink_to(_secret(site))
    return str(link)


def _hard_link(site: Site) -> str:
    link = site.state_dir / "outbox" / NAME
    os.link(_secret(site), link)
    return str(link)


def _fifo(site: Site) -> str:
    _secret(site)
    fifo = site.state_dir / "outbox" / NAME
    os.mkfifo(fifo)  # opening it for reading would block a naive copy forever
    return str(fifo)


def _outbox_is_a_link(site: Site) -> str:
    secret = _secret(site)
    box = site.state_dir / "outbox"
    box.rmdir()
    box.symlink_to(secret.parent)  # the agent owns the state dir: it can do this
    return str(box / secret.name)


def _foreign_owner(site: Site) -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the state dir to another uid")
    _secret(site)
    os.chown(site.state_dir, AGENT, AGENT)
    os.chown(site.state_dir / "outbox", AGENT, AGENT)
    staged = site.state_dir / "outbox" / NAME
    staged.write_bytes(SECRET)  # root's file, not the agent's
    return str(staged)


ANSWERS: dict[str, Callable[[Site], str]] = {
    "absolute path outside": lambda site: str(_secret(site)),
    "dot-dot name": _dot_dot,
    "symlink in the outbox": _symlink,
    "hard link in the outbox": _hard_link,
    "fifo in the outbox": _fifo,
    "outbox replaced by a symlink": _outbox_is_a_link,
    "file owned by another user": _foreign_owner,
}


@pytest.mark.parametrize("case", sorted(ANSWERS))
def test_export_refuses_a_path_the_daemon_should_not_name(
    enrolled: Site, run: Run, tmp_path: Path, case: str
) -> None:
    (enrolled.root / "etc").mkdir(exist_ok=True)
    answer = ANSWERS[case](enrolled)
    usb = tmp_path / "usb"
    usb.mkdir()
    secret = enrolled.root / "etc" / "passwd"
    with daemon_side(enrolled.socket) as daemon:
        daemon.export = {"path": answer, "first_seq": 1, "last_seq": 3, "count": 3}
        result = run("--config", enrolled.config, "export", usb)
    assert result.code == 1, result.out
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "nothing copied" in lines[0], result.err
    assert list(usb.iterdir()) == []  # nothing read out
    assert secret.read_bytes() == SECRET  # nothing deleted
    assert os.path.lexists(answer)  # not even the entry the daemon named is removed


def test_export_copies_and_removes_a_bundle_in_the_outbox(
    enrolled: Site, run: Run, tmp_path: Path
) -> None:
    staged = enrolled.state_dir / "outbox" / NAME
    staged.write_bytes(b'{"records": []}\n')
    usb = tmp_path / "usb"
    usb.mkdir()
    with daemon_side(enrolled.socket) as daemon:
        daemon.export = {"path": str(staged), "first_seq": 1, "last_seq": 3, "count": 3}
        result = run("--config", enrolled.config, "export", usb, "--json")
    assert result.code == 0, result.err
    assert result.json()["path"] == str(usb / NAME)
    assert (usb / NAME).read_bytes() == b'{"records": []}\n'
    assert not staged.exists()


def test_export_to_a_missing_directory_says_so(enrolled: Site, run: Run) -> None:
    result = run("--config", enrolled.config, "export", enrolled.root / "nonexistent")
    assert result.code == 2
    assert "no such directory" in result.err and "not a directory" not in result.err
