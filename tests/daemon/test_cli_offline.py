"""``qatysu upload``, ``export`` and ``ack``: through the daemon, or directly when it is stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import build_receipt
from tests.daemon.scenarios import next_uid
from tests.daemon.support import REPO, DaemonProcess, Device, LivePortal, make_device, wait_until
from tests.support.chaos_proxy import ChaosProxy


def qatysu(device: Device, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(device.config_path), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    value: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return value


def import_bundle(portal: LivePortal, bundle: Path, receipt: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "portal",
            "--data-dir",
            str(portal.settings.data_dir),
            "import-bundle",
            str(bundle),
            "--receipt-out",
            str(receipt),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_offline_round_trip_through_the_daemon_then_directly(
    tmp_path: Path, portal: LivePortal
) -> None:
    proxy = ChaosProxy(("127.0.0.1", portal.server.port))
    proxy.refuse(True)  # the club has no network
    device = make_device(tmp_path / "dev", portal, portal_url=proxy.url)
    usb = tmp_path / "usb"
    usb.mkdir()
    try:
        with DaemonProcess(device) as daemon:
            daemon.wait_ready()
            uids = [next_uid() for _ in range(5)]
            daemon.tap(*uids)
            wait_until(lambda: daemon.request("status")["head_seq"] >= 6, what="5 taps stored")

            failed = qatysu(device, "upload", "--json", "--wait", "20")
            assert failed.returncode == 1
            assert failed.stderr.startswith("qatysu: error: upload incomplete:")
            assert len(failed.stderr.strip().splitlines()) == 1

            exported = as_json(qatysu(device, "export", str(usb), "--json"))
            bundle = Path(exported["path"])
            assert bundle.parent == usb and exported["first_seq"] == 1
            assert list((device.root / "state" / "outbox").iterdir()) == []  # copied out
            assert exported["count"] == exported["last_seq"] >= 6
            assert bundle.name == f"qatysu-{device.device_id}-1-{exported['last_seq']}.json"
            stored = [r["data"].get("uid") for r in json.loads(bundle.read_text())["records"]]
            assert set(uids) <= set(stored)

            forged = tmp_path / "forged.json"
            forged.write_text(
                json.dumps(
                    build_receipt(
                        Ed25519PrivateKey.generate(),
                        device=device.device_id,
                        seq=exported["last_seq"],
                        record_hash=json.loads(bundle.read_text())["records"][-1]["hash"],
                        server_ms=1,
                    )
                )
            )
            refused = qatysu(device, "ack", str(forged))
            assert refused.returncode == 1 and "pinned portal key" in refused.stderr
            assert daemon.request("status")["last_ack_seq"] == 0

            receipt = tmp_path / "receipt.json"
            import_bundle(portal, bundle, receipt)
            acked = as_json(qatysu(device, "ack", str(receipt), "--json"))
            assert acked == {"freed": exported["count"], "last_ack_seq": exported["last_seq"]}
            assert daemon.request("status")["last_ack_seq"] == exported["last_seq"]
            daemon.terminate()

        # The daemon is stopped: the same commands open the buffer themselves.
        second = as_json(qatysu(device, "export", str(usb), "--json"))
        assert second["first_seq"] == exported["last_seq"] + 1
        receipt2 = tmp_path / "receipt2.json"
        import_bundle(portal, Path(second["path"]), receipt2)
        assert as_json(qatysu(device, "ack", str(receipt2), "--json"))["freed"] == second["count"]

        with DaemonProcess(device) as daemon:  # a boot record to upload
            daemon.wait_ready()
            daemon.terminate()
        proxy.refuse(False)
        uploaded = as_json(qatysu(device, "upload", "--json"))
        assert uploaded["error"] is None and uploaded["pending"] == 0 and uploaded["uploaded"] >= 1
    finally:
        proxy.stop()
    records = portal.records(device.device_id)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    alarms = [r["data"]["kind"] for r in records if r["type"] == "alarm"]
    assert alarms, "the forged receipt left an alarm record"
