"""The daemon's figures for ``bench.drain``: latency, memory, kills.

:func:`measure_daemon` runs ``qatysu run`` as a real process (simulated
reader, MockFactory pins) against the real portal under uvicorn on SQLite:

* tap to durable record, and tap to portal receipt, while online: taps are
  spaced (one every 40 ms) so each is measured alone. "Durable" is when the
  daemon's ``watch`` stream reports the record stored (the green light is
  given at the same moment); "receipt" is when ``status`` first shows a
  ``last_ack_seq`` covering it (polled every 10 ms, so up to 10 ms late).
* SIGTERM to exit while taps arrive (one every 5 ms), against the 5 s the
  daemon promises (docs/daemon.md) and systemd's ``TimeoutStopSec``: each
  run starts a daemon, taps for 0.5 s, sends SIGTERM and times the exit.
* resident memory (VmRSS) of the daemon after 100,000 records appended
  through it while the portal is unreachable (the backlog stays on disk),
  and again after a restart that opens that backlog.
* the kill loop of tests/daemon (SIGKILL at random moments while taps
  arrive and uploads run), with every confirmed tap checked at the portal.
* an end-to-end chaos run: taps for 60 s (10 s with ``quick``) through the
  fault-injecting proxy; as many taps as fit.

``python -m bench.daemon_figures [--quick]`` prints the dict as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.daemon.daemon import STOP_DEADLINE_S
from bench.common import median, percentile, table
from tests.daemon.scenarios import Tapper, drain, kill_loop, next_uid, run_chaos
from tests.daemon.support import DaemonProcess, LivePortal, make_device, wait_until
from tests.support.chaos_proxy import ChaosProxy

__all__ = ["daemon_note", "measure_daemon"]

# The latency rig's gathering delay: an upload starts this long after a tap, so
# taps arriving together share a batch (200 ms by default on a device).
LATENCY_UPLOAD_DELAY_MS = 50


def _rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def _latency(root: Path, portal: LivePortal, taps: int) -> dict[str, float]:
    device = make_device(root, portal, upload_delay_ms=LATENCY_UPLOAD_DELAY_MS)
    with DaemonProcess(device) as daemon:
        daemon.wait_ready()
        drain(daemon)
        with Tapper(daemon, interval_s=0.04, follow_acks=True) as tapper:
            wait_until(lambda: len(tapper.log.sent) >= taps, 600, "taps")
        daemon.terminate()
    log = tapper.log
    durable = [(log.durable_at[u] - log.sent[u]) * 1000 for u in log.confirmed if u in log.sent]
    receipt = [
        (log.acked_at[seq] - log.sent[u]) * 1000
        for u, seq in log.confirmed.items()
        if u in log.sent and seq in log.acked_at
    ]
    return {
        "latency_taps": len(durable),
        "tap_to_durable_ms_median": round(median(durable), 2),
        "tap_to_durable_ms_p99": round(percentile(durable, 99), 2),
        "tap_to_receipt_ms_median": round(median(receipt), 2),
        "tap_to_receipt_ms_p99": round(percentile(receipt, 99), 2),
    }


def _sigterm(root: Path, portal: LivePortal, runs: int) -> dict[str, Any]:
    device = make_device(root, portal)
    stops: list[float] = []
    for _ in range(runs):
        with DaemonProcess(device) as daemon:
            daemon.wait_ready()
            with Tapper(daemon, interval_s=0.005):
                time.sleep(0.5)
                stops.append(daemon.terminate())
            if daemon.proc.returncode != 0:
                raise RuntimeError(f"daemon exited {daemon.proc.returncode}: {daemon.log()}")
    return {
        "sigterm_runs": runs,
        "sigterm_to_exit_s_median": round(median(stops), 2),
        "sigterm_to_exit_s_max": round(max(stops), 2),
    }


def _memory(root: Path, portal: LivePortal, records: int) -> dict[str, float]:
    proxy = ChaosProxy(("127.0.0.1", portal.server.port))
    proxy.refuse(True)  # offline: the whole backlog stays in the buffer
    device = make_device(root, portal, portal_url=proxy.url)
    chunk = 500
    try:
        with DaemonProcess(device) as daemon:
            daemon.wait_ready()
            started = time.monotonic()
            base = daemon.request("status")["head_seq"]
            sent = 0
            while sent < records:
                n = min(chunk, records - sent)
                daemon.tap(*(next_uid() for _ in range(n)))
                sent += n
                target = base + sent
                # Wait for the writer to catch up: the queue must not hold the backlog.
                wait_until(lambda t=target: daemon.request("status")["head_seq"] >= t, 120)
            append_s = time.monotonic() - started
            rss, hwm = _rss_mb(daemon.proc.pid)
            pending = daemon.request("status")["pending"]
            daemon.terminate()
        with DaemonProcess(device) as daemon:
            daemon.wait_ready()
            reopen_rss, reopen_hwm = _rss_mb(daemon.proc.pid)
            daemon.terminate()
    finally:
        proxy.stop()
    return {
        "rss_records": records,
        "rss_pending": pending,
        "rss_mb_after_100k": round(rss, 1),
        "rss_peak_mb_after_100k": round(hwm, 1),
        "rss_mb_reopen_100k": round(reopen_rss, 1),
        "rss_peak_mb_reopen_100k": round(reopen_hwm, 1),
        "append_records_per_s": round(records / append_s),
    }


def measure_daemon(quick: bool) -> dict[str, Any]:
    """The daemon's headline figures (see the module docstring)."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="qatysu-daemon-bench-") as tmp:
        root = Path(tmp)
        portal = LivePortal(root / "portal")
        try:
            figures.update(_latency(root / "latency", portal, 100 if quick else 1000))
            figures.update(_sigterm(root / "sigterm", portal, 3 if quick else 20))
            figures.update(_memory(root / "memory", portal, 10_000 if quick else 100_000))
            kills = 30 if quick else 1000
            _log, check = kill_loop(portal, make_device(root / "kills", portal), kills)
            figures.update(
                kills=kills,
                kill_taps_confirmed=check.confirmed,
                lost=check.lost,
                duplicated=len(check.duplicated),
                kill_chain_ok=check.failure is None,
            )
            seconds = 10.0 if quick else 60.0
            _log, counts = run_chaos(root / "chaos", portal, seconds)
            figures.update(
                chaos_seconds=seconds,
                chaos_taps=counts.pop("taps"),
                chaos_faults={k: v for k, v in counts.items() if k != "records"},
            )
        finally:
            portal.close()
    return figures


def daemon_note(f: dict[str, Any]) -> str:
    """The daemon's figures as a markdown table with what each one includes."""
    faults = ", ".join(f"{k} {v}" for k, v in sorted(f["chaos_faults"].items()))
    rows = [
        [
            f"tap to durable record, median / p99 ({f['latency_taps']:,} spaced taps)",
            f"{f['tap_to_durable_ms_median']} / {f['tap_to_durable_ms_p99']} ms",
        ],
        [
            "tap to portal receipt, median / p99 (includes the "
            f"{LATENCY_UPLOAD_DELAY_MS} ms gathering delay of this rig)",
            f"{f['tap_to_receipt_ms_median']} / {f['tap_to_receipt_ms_p99']} ms",
        ],
        [
            f"SIGTERM to exit while tapping, median / max ({f['sigterm_runs']} runs; "
            f"promised within {STOP_DEADLINE_S:.0f} s)",
            f"{f['sigterm_to_exit_s_median']} / {f['sigterm_to_exit_s_max']} s",
        ],
        [
            f"resident memory after {f['rss_records']:,} records appended offline (peak)",
            f"{f['rss_mb_after_100k']} MB ({f['rss_peak_mb_after_100k']} MB)",
        ],
        [
            f"resident memory after a restart opens {f['rss_pending']:,} pending (peak)",
            f"{f['rss_mb_reopen_100k']} MB ({f['rss_peak_mb_reopen_100k']} MB)",
        ],
        ["taps appended through the daemon, offline", f"{f['append_records_per_s']:,}/s"],
        [
            "SIGKILLs at random moments: confirmed taps, lost, duplicated, chain valid",
            f"{f['kills']:,}: {f['kill_taps_confirmed']:,}, {f['lost']}, "
            f"{f['duplicated']}, {'yes' if f['kill_chain_ok'] else 'NO'}",
        ],
        [
            f"chaos proxy for {f['chaos_seconds']:.0f} s: taps, every one at the portal",
            f"{f['chaos_taps']:,} ({faults})",
        ],
    ]
    return (
        "The daemon (`qatysu run` as a process: simulated reader, MockFactory pins) "
        "against the real portal, from `bench.daemon_figures`:\n\n"
        + table(["figure", "value"], rows)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run")
    args = parser.parse_args()
    print(json.dumps(measure_daemon(args.quick), sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
