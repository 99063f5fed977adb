"""The USB-stick path: export a bundle, import it with the real ``qatysu-portal``
command, apply the receipt file it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.exceptions import OfflineError
from agent.protocol import build_receipt, verify_bundle
from agent.uplink.offline import apply_receipt_file, export_bundle
from tests.uplink.conftest import Rig


def _import_bundle(rig: Rig, bundle: Path, receipt: Path) -> subprocess.CompletedProcess[str]:
    """``qatysu-portal import-bundle`` as an operator runs it, on the portal's data dir."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "portal",
            "--data-dir",
            str(rig.portal.settings.data_dir),
            "import-bundle",
            str(bundle),
            "--receipt-out",
            str(receipt),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_export_import_ack_frees_the_space(rig: Rig, tmp_path: Path) -> None:
    assert rig.store is not None and rig.buffer is not None
    rig.write(700)  # several segments of 256 records
    segments_before = len(list(rig.buffer.layout.segments.iterdir()))
    stick = tmp_path / "usb"
    stick.mkdir()
    bundle = export_bundle(rig.store, stick)
    assert bundle.name == f"qatysu-{rig.device_id}-1-700.json"
    assert [p.name for p in stick.iterdir()] == [bundle.name]  # no temporary left behind
    report = verify_bundle(json.loads(bundle.read_bytes()), rig.public_key)
    assert report.exit_code == 0 and report.count == 700
    assert rig.store.pending_count == 700  # exporting frees nothing

    receipt = tmp_path / "receipt.json"
    done = _import_bundle(rig, bundle, receipt)
    assert done.returncode == 0, done.stderr
    assert "700 stored" in done.stdout

    freed = apply_receipt_file(rig.store, receipt, rig.portal_key)
    assert freed == 700
    assert rig.store.pending_count == 0 and rig.store.last_ack[0] == 700
    assert len(list(rig.buffer.layout.segments.iterdir())) < segments_before
    assert [r["seq"] for r in rig.stored()] == list(range(1, 701))
    assert apply_receipt_file(rig.store, receipt, rig.portal_key) == 0  # twice: harmless

    # Later records go by network as usual, after the acknowledged bundle.
    rig.write(5, start=900)
    assert rig.uploader().run_once().error is None
    assert [r["seq"] for r in rig.stored()][-5:] == list(range(701, 706))


def test_bundle_with_a_quarantined_record_bridges_its_hole(rig: Rig, tmp_path: Path) -> None:
    assert rig.store is not None
    rig.write(20)
    rig.store.quarantine_record(7, "encoding")  # as a refused upload would have
    bundle = export_bundle(rig.store, tmp_path)  # declares the loss first
    records = json.loads(bundle.read_bytes())["records"]
    assert records[-1]["type"] == "gap" and records[-1]["data"]["first_seq"] == 7
    assert verify_bundle(json.loads(bundle.read_bytes()), rig.public_key).exit_code == 3
    receipt = tmp_path / "r.json"
    done = _import_bundle(rig, bundle, receipt)
    assert done.returncode == 0, done.stderr
    assert apply_receipt_file(rig.store, receipt, rig.portal_key) == 20
    assert rig.store.pending_count == 0


def test_export_with_nothing_pending_says_so(rig: Rig, tmp_path: Path) -> None:
    assert rig.store is not None
    with pytest.raises(OfflineError, match="nothing to export") as caught:
        export_bundle(rig.store, tmp_path)
    assert str(tmp_path) in str(caught.value)
    with pytest.raises(OfflineError, match="not a directory"):
        export_bundle(rig.store, tmp_path / "missing")


def test_receipt_signed_by_another_key_frees_nothing(rig: Rig, tmp_path: Path) -> None:
    assert rig.store is not None
    rig.write(10)
    last = rig.store.written[10]
    forged = build_receipt(
        Ed25519PrivateKey.generate(),
        device=rig.device_id,
        seq=10,
        record_hash=last["hash"],
        server_ms=1,
    )
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    with pytest.raises(OfflineError, match="signature") as caught:
        apply_receipt_file(rig.store, path, rig.portal_key)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert rig.store.pending_count == 11  # ten taps and the alarm
    assert [a["data"]["kind"] for a in rig.store.alarms()] == ["receipt_signature"]


def test_receipt_with_unknown_hash_frees_nothing(rig: Rig, tmp_path: Path) -> None:
    """Genuinely signed by the portal, but for a chain this device never made."""
    assert rig.store is not None
    rig.write(10)
    receipt = build_receipt(
        rig.portal.key, device=rig.device_id, seq=10, record_hash="cd" * 32, server_ms=1
    )
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"receipt": receipt}))
    with pytest.raises(OfflineError, match="unknown to this device"):
        apply_receipt_file(rig.store, path, rig.portal_key)
    assert rig.store.pending_count == 11
    assert [a["data"]["kind"] for a in rig.store.alarms()] == ["receipt_unknown_hash"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a receipt file"),
        (b"[1]", "expected a JSON object"),
        (
            b'{"v": 1, "records": []}',
            "it lacks device, seq, record_hash, server_ms, hash, sig and has unexpected records",
        ),
        (b'{"a": 1.5}', "not a receipt"),
    ],
)
def test_unreadable_receipt_file_is_one_line(
    rig: Rig, tmp_path: Path, content: bytes, message: str
) -> None:
    assert rig.store is not None
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(OfflineError, match=message) as caught:
        apply_receipt_file(rig.store, path, rig.portal_key)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)
    assert rig.store.alarms() == []
    with pytest.raises(OfflineError, match="No such file"):
        apply_receipt_file(rig.store, tmp_path / "absent.json", rig.portal_key)
