"""End to end through a fault-injecting proxy, and a fake portal with another key."""

from __future__ import annotations

import time
from pathlib import Path

from tests.daemon.scenarios import Tapper, check_portal_chain, drain, run_chaos
from tests.daemon.support import DaemonProcess, LivePortal, make_device, wait_until
from tests.support.chaos_proxy import ChaosProxy

CHAOS_S = 12.0


def test_taps_through_chaos_reach_the_portal_exactly_once(
    tmp_path: Path, portal: LivePortal
) -> None:
    _log, counts = run_chaos(tmp_path, portal, CHAOS_S)
    assert counts["taps"] > 500
    assert counts.get("fake", 0) > 0 and counts.get("pass", 0) > 0


def test_a_fake_portal_never_makes_the_device_delete(tmp_path: Path, portal: LivePortal) -> None:
    proxy = ChaosProxy(("127.0.0.1", portal.server.port))
    proxy.mode = "fake"
    device = make_device(tmp_path, portal, portal_url=proxy.url)
    try:
        with DaemonProcess(device) as daemon:
            daemon.wait_ready()
            with Tapper(daemon, interval_s=0.01) as tapper:
                time.sleep(0.5)
            wait_until(lambda: proxy.counts["fake"] >= 3, what="three fake answers")
            time.sleep(2.0)
            status = daemon.request("status")
            assert status["last_ack_seq"] == 0
            assert status["pending"] == status["head_seq"] >= len(tapper.log.confirmed) > 0
            assert "signature" in (status["last_upload_error"] or "")
            # Backed off, not retried in a tight loop (backoff_max_s is 1 s here).
            assert proxy.counts["fake"] < 30
            answer = daemon.request("upload", wait_s=10)
            assert answer["error"] and answer["uploaded"] == 0
            assert daemon.request("status")["last_ack_seq"] == 0
            proxy.mode = "pass"
            drain(daemon)
            daemon.terminate()
        records = portal.records(device.device_id)
        check = check_portal_chain(portal, device, tapper.log)
        assert check.failure is None and check.missing == [] and check.duplicated == []
        alarms = [r["data"]["kind"] for r in records if r["type"] == "alarm"]
        assert alarms, "the fake receipt raised an alarm record"
    finally:
        proxy.stop()
