"""The ``qatysu-portal`` command line through its real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.protocol import make_bundle, verify_receipt
from portal.cli import main
from portal.keys import load_or_create_key
from portal.registry import enroll_device
from portal.settings import Settings
from portal.state import open_portal
from tests.portal.support import SimDevice


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "pd"


def test_operator_workflow(
    capsys: pytest.CaptureFixture[str], data_dir: Path, tmp_path: Path
) -> None:
    d = ["--data-dir", str(data_dir)]
    assert run(capsys, *d, "center", "add", "c7", "--name", "Seven")[0] == 0
    code, out, _ = run(capsys, *d, "admin-token", "create", "--name", "ops", "--role", "auditor")
    assert code == 0 and out.strip().startswith("qat_")
    code, out, _ = run(capsys, *d, "enroll-token", "create", "--center", "c7", "--ttl", "2h")
    token = out.strip()
    assert code == 0 and token.startswith("qen_")

    # A device enrolls and exports a bundle; the operator imports it.
    sim = SimDevice()
    portal = open_portal(Settings(data_dir=data_dir))
    sim.device_id = enroll_device(
        portal.engine, token, sim.public_key, "t", {}, now=portal.clock()
    ).device_id
    portal.close()
    batch = sim.batch(12)
    bundle = tmp_path / f"qatysu-{sim.device_id}-1-12.json"
    bundle.write_text(json.dumps(make_bundle(sim.device_id, sim.public_key, batch)))
    receipt_file = tmp_path / "receipt.json"
    code, out, err = run(
        capsys, *d, "import-bundle", str(bundle), "--receipt-out", str(receipt_file)
    )
    assert code == 0, err
    assert "12 stored" in out
    receipt = verify_receipt(
        json.loads(receipt_file.read_text()),
        load_or_create_key(data_dir).public_key(),
        sim.device_id,
    )
    assert (receipt["seq"], receipt["record_hash"]) == (12, batch[-1]["hash"])

    code, out, _ = run(capsys, *d, "devices", "--json")
    [row] = json.loads(out)
    assert (row["device_id"], row["center_id"], row["head_seq"]) == (sim.device_id, "c7", 12)
    code, out, _ = run(capsys, *d, "verify")
    assert code == 0 and "intact, 12 records" in out
    assert run(capsys, *d, "device", "revoke", sim.device_id)[0] == 0
    code, out, _ = run(capsys, *d, "devices")
    assert sim.device_id in out


def test_errors_are_one_line_with_exit_codes(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    d = ["--data-dir", str(data_dir)]
    code, _, err = run(capsys, *d, "enroll-token", "create", "--center", "nowhere")
    assert code == 1
    assert err.startswith("qatysu-portal: error: center 'nowhere' does not exist")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, *d, "enroll-token", "create", "--center", "x", "--ttl", "soon")
    assert code == 2 and "--ttl" in err
    code, _, err = run(capsys, *d, "device", "revoke", "dev-none")
    assert code == 1 and "dev-none" in err
    assert run(capsys, *d, "no-such-command")[0] == 2
    code, _, err = run(capsys, *d, "import-bundle", str(data_dir / "missing.json"))
    assert code == 1 and "missing.json" in err


def test_bad_database_url_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    code, _, err = run(capsys, "--data-dir", str(data_dir), "--db", "mysql://x/y", "devices")
    assert code == 2 and "not supported" in err


def test_open_key_file_is_refused(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    assert run(capsys, "--data-dir", str(data_dir), "devices")[0] == 0
    (data_dir / "portal.key").chmod(0o644)
    code, _, err = run(capsys, "--data-dir", str(data_dir), "devices")
    assert code == 2 and "chmod 600" in err


def test_module_entry_point(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "portal",
            "--data-dir",
            str(tmp_path / "pd"),
            "center",
            "add",
            "a",
            "--name",
            "A",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "center a added" in done.stdout
