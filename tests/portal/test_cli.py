"""The ``qatysu-portal`` command line through its real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from agent.protocol import make_bundle, verify_receipt
from portal.cli import main
from portal.db.schema import integrity_events, records
from portal.ingest.batch import ingest_batch
from portal.keys import load_or_create_key
from portal.registry import enroll_device
from portal.settings import Settings
from portal.state import Portal, open_portal
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
    assert run(capsys, *d, "admin-token", "list")[1] == "ops\tauditor\tlive\n"
    assert run(capsys, *d, "admin-token", "revoke", "ops")[0] == 0
    assert run(capsys, *d, "admin-token", "list")[1] == "ops\tauditor\trevoked\n"
    assert run(capsys, *d, "admin-token", "revoke", "ops")[0] == 1
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
    assert code == 2
    assert err.startswith("qatysu-portal: error: center 'nowhere' does not exist")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, *d, "enroll-token", "create", "--center", "x", "--ttl", "soon")
    assert code == 2 and "--ttl" in err
    code, _, err = run(capsys, *d, "device", "revoke", "dev-none")
    assert code == 2 and "dev-none" in err
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


def enrolled(
    capsys: pytest.CaptureFixture[str], d: list[str], data_dir: Path
) -> tuple[SimDevice, Portal]:
    """A center through the CLI and a device enrolled with a CLI token; the portal open."""
    assert run(capsys, *d, "center", "add", "c1", "--name", "One")[0] == 0
    token = run(capsys, *d, "enroll-token", "create", "--center", "c1")[1].strip()
    sim = SimDevice()
    portal = open_portal(Settings(data_dir=data_dir))
    sim.device_id = enroll_device(portal.engine, token, sim.public_key, "t", {}, now=1).device_id
    return sim, portal


def test_verify_and_import_report_broken_chains(
    capsys: pytest.CaptureFixture[str], data_dir: Path, tmp_path: Path
) -> None:
    d = ["--data-dir", str(data_dir)]
    sim, portal = enrolled(capsys, d, data_dir)
    batch = sim.batch(6)
    batch[4] = dict(batch[4], wall_ms=1)  # altered after signing
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps(make_bundle(sim.device_id, sim.public_key, batch)))
    code, out, err = run(capsys, *d, "import-bundle", str(bundle))
    assert code == 1
    assert "4 stored" in out and "seq 5: hash" in err

    # Someone edits the database behind the portal's back.
    with portal.engine.begin() as conn:
        conn.execute(
            update(records)
            .where(records.c.device_id == sim.device_id, records.c.seq == 2)
            .values(body=dict(batch[1], type="door"))
        )
    portal.close()
    code, out, _ = run(capsys, *d, "verify", "--device", sim.device_id)
    assert code == 1
    assert "BROKEN at seq 2: hash" in out


def test_verify_reports_records_deleted_from_the_end(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    d = ["--data-dir", str(data_dir)]
    sim, portal = enrolled(capsys, d, data_dir)
    outcome = ingest_batch(portal.engine, portal.key, sim.device_id, sim.batch(10), now=2)
    assert outcome.status == 200
    # The last three records vanish from the database; the head still says 10.
    with portal.engine.begin() as conn:
        conn.execute(delete(records).where(records.c.device_id == sim.device_id, records.c.seq > 7))
    portal.close()
    code, out, _ = run(capsys, *d, "verify", "--device", sim.device_id)
    assert code == 1
    assert "stored head at seq 10, stored chain ends at seq 7" in out
    portal = open_portal(Settings(data_dir=data_dir))
    with portal.engine.connect() as conn:
        events = conn.execute(
            select(integrity_events.c.reason, integrity_events.c.first_seq).where(
                integrity_events.c.device_id == sim.device_id
            )
        ).all()
    portal.close()
    assert [(e.reason, e.first_seq) for e in events] == [("head", 8)]


def test_centers_carry_a_district_set_listed_and_cleared(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    d = ["--data-dir", str(data_dir)]
    add = ["center", "add", "c1", "--name", "Шахматы", "--district", "  Медеуский "]
    assert run(capsys, *d, *add)[0] == 0
    assert run(capsys, *d, "center", "add", "c2", "--name", "Two")[0] == 0
    assert run(capsys, *d, "center", "list")[1] == "c1\tШахматы\tМедеуский\nc2\tTwo\t-\n"
    assert run(capsys, *d, "center", "set", "c2", "--district", "Турксибский")[0] == 0
    assert run(capsys, *d, "center", "set", "c1", "--district", "")[0] == 0
    assert run(capsys, *d, "center", "list")[1] == "c1\tШахматы\t-\nc2\tTwo\tТурксибский\n"
    code, _, err = run(capsys, *d, "center", "set", "c1")
    assert code == 2 and "give --require-card-auth or --district" in err
    code, _, err = run(capsys, *d, "center", "set", "nope", "--district", "X")
    assert code == 2 and "center 'nope' does not exist" in err
