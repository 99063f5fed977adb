"""A state dir the disk will not write, and a lost device key: one line that says what works.

The read-only state dir is a real read-only mount (tests/cli/readonly.py), as an
SD card that fails leaves it; chmod would not stop a test running as root.
"""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import load_config
from agent.protocol import public_key_b64
from portal.registry import create_enroll_token
from portal.state import Portal
from tests.cli.conftest import Run, Site
from tests.cli.readonly import run_read_only
from tests.cli.test_status import write_records
from tests.daemon.support import LivePortal
from tests.support.tools import missing


@pytest.fixture
def enrolled(sim_site: Site, run: Run) -> Site:
    """A simulated-reader device with a portal pinned (no portal needed here)."""
    for key, value in (
        ("portal.url", "https://portal.test"),
        ("portal.public_key", public_key_b64(Ed25519PrivateKey.generate())),
        ("portal.device_id", "dev-1"),
    ):
        made = run("--config", sim_site.config, "config", "set", key, value)
        assert made.code == 0, made.err
    write_records(sim_site, 2).close()
    return sim_site


@pytest.mark.parametrize("command", [["run"], ["upload"], ["export", "USB"]])
def test_a_read_only_state_dir_is_one_line(enrolled: Site, command: list[str]) -> None:
    usb = enrolled.root / "usb"
    usb.mkdir()
    args = [str(usb) if a == "USB" else a for a in command]
    state = enrolled.state_dir
    done = run_read_only(state, "agent", "--config", enrolled.config, *args)
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr == (
        f"qatysu: error: {state / 'buffer' / 'lock'}: Read-only file system: the state dir "
        f"{state} is read-only (an SD card that fails turns read-only: replace it)\n"
    )
    assert list(usb.iterdir()) == []


@pytest.mark.parametrize("command", [["run"], ["upload"], ["export", "."], ["ack", "r.json"]])
def test_a_lost_key_says_what_works(enrolled: Site, run: Run, command: list[str]) -> None:
    (enrolled.state_dir / "device.key").unlink()
    result = run("--config", enrolled.config, *command)
    qatysu = f"qatysu --config {enrolled.config}"
    assert (result.code, result.out) == (2, "")
    assert result.err == (
        f"qatysu: error: {enrolled.state_dir / 'device.key'}: no device key: this device "
        "can no longer sign records as dev-1 and the portal accepts no other key for it: "
        "ask the portal operator for a new enrollment token (and to revoke dev-1), then run "
        f"'{qatysu} init --new-key' and '{qatysu} enroll --portal URL --token TOKEN'\n"
    )


def test_the_lost_key_way_out_enrolls_a_new_device(
    enrolled: Site, run: Run, portal: Portal, live: LivePortal
) -> None:
    """The steps the run line names, against the real portal: they work as typed."""
    tok = create_enroll_token(portal.engine, "c1", 3_600_000, now=portal.clock())
    first = run(
        "--config", enrolled.config, "enroll", "--portal", live.url, "--token", tok, "--insecure"
    )
    # The fixture's pinning is replaced by a real enrollment of the old key.
    assert first.code == 2 and "needs --force" in first.err
    assert (
        run(
            "--config",
            enrolled.config,
            "enroll",
            "--portal",
            live.url,
            "--token",
            tok,
            "--insecure",
            "--force",
        ).code
        == 0
    )
    old = load_config(enrolled.config).portal.device_id
    (enrolled.state_dir / "device.key").unlink()
    # Enrolling again without a new key cannot help: the key file is gone.
    made = run("--config", enrolled.config, "init", "--new-key", "--json")
    assert made.code == 0, made.err
    done = made.json()
    assert done["old_device_id"] == old
    aside = enrolled.state_dir / f"buffer.lost-key.{old}"
    assert done["old_buffer"] == str(aside) and (aside / "segments").is_dir()
    assert not (enrolled.state_dir / "buffer").exists()
    assert load_config(enrolled.config).portal.device_id == ""
    # The old token is used by the lost key; a new one enrolls the new key.
    again = run(
        "--config",
        enrolled.config,
        "enroll",
        "--portal",
        live.url,
        "--token",
        tok,
        "--insecure",
        "--json",
    )
    assert again.code == 1 and again.json()["error"] == "token_gone"
    new = create_enroll_token(portal.engine, "c1", 3_600_000, now=portal.clock())
    fresh = run(
        "--config",
        enrolled.config,
        "enroll",
        "--portal",
        live.url,
        "--token",
        new,
        "--insecure",
        "--json",
    )
    assert fresh.code == 0, fresh.err
    config = load_config(enrolled.config)
    assert config.portal.device_id == fresh.json()["device_id"] != old
    assert config.portal.public_key == public_key_b64(portal.key)
    # A second --new-key would orphan the device the portal now knows: refused.
    refused = run("--config", enrolled.config, "init", "--new-key")
    assert refused.code == 2 and "a device key exists" in refused.err


def test_new_key_takes_no_profile(enrolled: Site, run: Run) -> None:
    result = run("--config", enrolled.config, "init", "--new-key", "--profile", "pi5-rc522")
    assert result.code == 2 and "--new-key keeps the config" in result.err
    result = run("--config", enrolled.config, "init")
    assert result.code == 2 and "--profile: required" in result.err
    assert load_config(enrolled.config).portal.device_id == "dev-1"


def test_new_key_as_root_belongs_to_the_state_dirs_owner(enrolled: Site, run: Run) -> None:
    """sudo qatysu init --new-key: the agent's user must still read its key."""
    if os.geteuid() != 0:
        missing("only root can give a file to another user")
    (enrolled.state_dir / "device.key").unlink()
    os.chown(enrolled.state_dir, 65534, 65534)
    assert run("--config", enrolled.config, "init", "--new-key").code == 0
    st = (enrolled.state_dir / "device.key").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o600)
