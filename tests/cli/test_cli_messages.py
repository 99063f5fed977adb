"""``qatysu`` messages of issue 19: hints that work as typed, negative values, export dirs."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import public_key_b64
from tests.cli.conftest import Run, Site, make_site


def test_init_next_hint_keeps_the_config_flag(tmp_path: Path, run: Run) -> None:
    config = tmp_path / "agent.toml"
    made = run("--config", config, "init", "--profile", "pi5-rc522", "--state-dir", tmp_path)
    assert made.code == 0, made.err
    assert made.out.splitlines()[-1] == (
        f"next: qatysu --config {config} config validate; "
        f"qatysu --config {config} enroll --portal URL --token TOKEN"
    )


def test_config_set_negative_value_is_checked_as_a_value(site: Site, run: Run) -> None:
    result = run("--config", site.config, "config", "set", "heartbeat.interval_s", "-5")
    assert result.code == 2
    assert "No such option" not in result.err and "heartbeat.interval_s" in result.err


def test_config_show_lists_only_the_reader_drivers_keys(
    tmp_path: Path, short_dir: Path, run: Run
) -> None:
    site = make_site(tmp_path, short_dir, run, "pi-rdm6300-uart")
    reader = run("--config", site.config, "config", "show", "--json").json()["readers"][0]
    assert reader["driver"] == "rdm6300"
    assert set(reader) == {"name", "driver", "port", "baudrate", "allow_network_port"}
    plain = run("--config", site.config, "config", "show").out
    assert "port = " in plain and not any(k in plain for k in ("spi_", "reset_pin"))


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            '{"junk": 1}',
            "it lacks v, device, seq, record_hash, server_ms, hash, sig and has unexpected junk",
        ),
        (
            '{"v": 1, "device": "d", "seq": 1, "record_hash": "a", "server_ms": 1, '
            '"hash": "b", "sig": "c", "more": 2}',
            "it has unexpected more",
        ),
    ],
)
def test_ack_of_a_file_that_is_no_receipt_names_it_whole(
    site: Site, run: Run, body: str, says: str
) -> None:
    for key, value in (
        ("portal.url", "https://portal.test"),
        ("portal.public_key", public_key_b64(Ed25519PrivateKey.generate())),
        ("portal.device_id", "dev-1"),
    ):
        assert run("--config", site.config, "config", "set", key, value).code == 0
    junk = site.root / "junk.json"
    junk.write_text(body)
    result = run("--config", site.config, "ack", junk)
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"qatysu: error: {junk}: not a receipt file: {says} (a receipt is the JSON file "
        "'qatysu-portal import-bundle --receipt-out' writes)\n"
    )
