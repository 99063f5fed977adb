"""Scenarios shared by tests/daemon and bench/daemon_figures.py: taps with
confirmation, the kill loop, and the final check of the portal's chain."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.exceptions import ControlError, ReaderError
from agent.protocol import verify_chain
from agent.protocol.keys import public_key_from_b64
from tests.daemon.support import DaemonProcess, Device, LivePortal, make_device, wait_until
from tests.support.chaos_proxy import FAULTS, ChaosProxy

_uids = itertools.count(0x10000000)


def next_uid() -> str:
    return f"{next(_uids):08X}"


@dataclass
class TapLog:
    """Taps sent, taps the daemon confirmed (stored: the green light), and when."""

    sent: dict[str, float] = field(default_factory=dict)  # uid -> monotonic time of the tap
    confirmed: dict[str, int] = field(default_factory=dict)  # uid -> seq
    durable_at: dict[str, float] = field(default_factory=dict)  # uid -> when confirmed
    acked_at: dict[int, float] = field(default_factory=dict)  # seq -> when a receipt covered it

    def merge(self, other: TapLog) -> None:
        self.sent.update(other.sent)
        self.confirmed.update(other.confirmed)
        self.durable_at.update(other.durable_at)
        self.acked_at.update(other.acked_at)


class Tapper:
    """Taps unique cards into a running daemon and follows its ``watch`` events.

    A tap counts as confirmed once the daemon's watch stream reports it stored
    with a seq: the moment the green light is given.
    """

    def __init__(
        self, daemon: DaemonProcess, *, interval_s: float = 0.01, follow_acks: bool = False
    ) -> None:
        self.daemon = daemon
        self.interval_s = interval_s
        self.follow_acks = follow_acks
        self.log = TapLog()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._cursor = 0
        self._watching = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, daemon=True),
            threading.Thread(target=self._tap, daemon=True),
        ]
        if follow_acks:
            self._threads.append(threading.Thread(target=self._acks, daemon=True))

    def __enter__(self) -> Tapper:
        self._threads[0].start()
        self._watching.wait(5)
        for thread in self._threads[1:]:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(25)

    def _tap(self) -> None:
        while not self._stop.is_set():
            uid = next_uid()
            sent = time.monotonic()
            try:
                self.daemon.tap(uid)
            except ReaderError:
                if self.daemon.proc.poll() is not None:
                    return
            else:
                with self._lock:
                    self.log.sent[uid] = sent
            self._stop.wait(self.interval_s)

    def _watch(self) -> None:
        client = self.daemon.device.client(5.0)
        while not self._stop.is_set() or self._pending_confirmations():
            try:
                answer = client.request("watch", after=self._cursor, wait_ms=200)
            except ControlError:
                self._watching.set()
                if self.daemon.proc.poll() is not None:
                    return  # killed: what was not seen stays unconfirmed
                time.sleep(0.01)
                continue
            now = time.monotonic()
            if self._cursor == 0:
                self._watching.set()
            self._cursor = answer["cursor"]
            for event in answer["events"]:
                if event.get("kind") == "badge" and event.get("stored"):
                    with self._lock:
                        self.log.confirmed[event["uid"]] = event["seq"]
                        self.log.durable_at[event["uid"]] = now
            if self._stop.is_set() and not answer["events"]:
                return

    def _pending_confirmations(self) -> bool:
        with self._lock:
            return len(self.log.confirmed) < len(self.log.sent)

    def _acks(self) -> None:
        """Poll ``status`` and note when a receipt first covers each confirmed seq;
        after stop, go on (up to 20 s) until every confirmed tap is covered."""
        client = self.daemon.device.client(5.0)
        give_up: float | None = None
        while True:
            if self._stop.is_set():
                give_up = give_up or time.monotonic() + 20.0
                with self._lock:
                    done = all(s in self.log.acked_at for s in self.log.confirmed.values())
                if done or time.monotonic() > give_up:
                    return
            try:
                acked = client.request("status")["last_ack_seq"]
            except ControlError:
                return
            now = time.monotonic()
            with self._lock:
                for seq in self.log.confirmed.values():
                    if seq <= acked and seq not in self.log.acked_at:
                        self.log.acked_at[seq] = now
            time.sleep(0.01)


def drain(daemon: DaemonProcess, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until the daemon holds nothing unacknowledged; its last status."""

    def done() -> dict[str, Any] | None:
        status = daemon.request("status")
        ok = status["pending"] == 0 and status["last_ack_seq"] == status["head_seq"]
        return status if ok else None

    result: dict[str, Any] = wait_until(done, timeout, "the daemon to drain")
    return result


@dataclass
class ChainCheck:
    records: int
    badges: int
    confirmed: int
    missing: list[str]
    duplicated: list[str]
    failure: str | None

    @property
    def lost(self) -> int:
        return len(self.missing)


def check_portal_chain(portal: LivePortal, device: Device, log: TapLog) -> ChainCheck:
    """The portal holds every seq once, a chain that verifies, every confirmed tap once."""
    records = portal.records(device.device_id)
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(set(seqs)), "the portal's records are not unique and in order"
    report = verify_chain(records, public_key_from_b64(device.public_key), device.device_id)
    failure = None if report.failure is None else f"{report.failure.seq}: {report.failure.reason}"
    seen: dict[str, int] = {}
    for record in records:
        if record["type"] == "badge":
            uid = record["data"]["uid"]
            seen[uid] = seen.get(uid, 0) + 1
    missing = sorted(uid for uid in log.confirmed if uid not in seen)
    duplicated = sorted(uid for uid, n in seen.items() if n > 1)
    return ChainCheck(
        len(records), sum(seen.values()), len(log.confirmed), missing, duplicated, failure
    )


def kill_loop(
    portal: LivePortal, device: Device, kills: int, *, seed: int = 6, max_up_s: float = 0.6
) -> tuple[TapLog, ChainCheck]:
    """Start the daemon, tap, SIGKILL it at a random moment; ``kills`` times; then drain."""
    rng = random.Random(seed)
    log = TapLog()
    for _ in range(kills):
        with DaemonProcess(device) as daemon:
            daemon.wait_ready()
            with Tapper(daemon, interval_s=rng.uniform(0.002, 0.02)) as tapper:
                time.sleep(rng.uniform(0.02, max_up_s))
                daemon.kill()
            log.merge(tapper.log)
    with DaemonProcess(device) as daemon:
        daemon.wait_ready()
        drain(daemon)
        daemon.terminate()
    return log, check_portal_chain(portal, device, log)


def chaos_schedule(seed: int) -> Callable[[int], str]:
    """Half the requests meet a fault, any of the proxy's."""
    rng = random.Random(seed)
    faults = [f for f in FAULTS if f != "pass"]

    def pick(n: int) -> str:
        return rng.choice(faults) if rng.random() < 0.5 else "pass"

    return pick


def run_chaos(
    tmp_path: Path, portal: LivePortal, seconds: float, seed: int = 6
) -> tuple[TapLog, dict[str, int]]:
    """Taps for ``seconds`` while the network fails in every way the proxy knows
    (per-request faults, refused connections, a fake portal, one portal
    restart); then the network heals and the device must drain. Asserts the
    portal then holds exactly the device's chain and every confirmed tap once."""
    proxy = ChaosProxy(("127.0.0.1", portal.server.port), delay_s=4.0)
    device = make_device(tmp_path, portal, portal_url=proxy.url)
    rng = random.Random(seed)
    try:
        with DaemonProcess(device) as daemon:
            daemon.wait_ready()
            with Tapper(daemon, interval_s=0.004) as tapper:
                end = time.monotonic() + seconds
                restarted = False
                while time.monotonic() < end:
                    phase = rng.choice(["schedule", "refuse", "fake", "pass"])
                    if phase == "schedule":
                        proxy.schedule = chaos_schedule(rng.randrange(1 << 30))
                    elif phase == "refuse":
                        proxy.refuse(True)
                    elif phase == "fake":
                        proxy.schedule, proxy.mode = None, "fake"
                    time.sleep(rng.uniform(0.3, 1.2))
                    proxy.refuse(False)
                    proxy.schedule, proxy.mode = None, "pass"
                    if not restarted and time.monotonic() > end - seconds / 2:
                        restarted = True
                        proxy.upstream = ("127.0.0.1", portal.restart())
            status = drain(daemon, timeout=120)
            daemon.terminate()
        check = check_portal_chain(portal, device, tapper.log)
        records = portal.records(device.device_id)
        assert [r["seq"] for r in records] == list(range(1, status["head_seq"] + 1))
        assert check.failure is None, check.failure
        assert check.missing == [] and check.duplicated == []
        assert status["pending"] == 0
        return tapper.log, {"taps": check.confirmed, "records": check.records, **proxy.counts}
    finally:
        proxy.stop()
