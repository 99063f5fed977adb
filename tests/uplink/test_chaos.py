"""End to end through a hostile network: a real buffer and chain writer, the uploader,
the chaos proxy and the real portal under uvicorn (restarted on the way)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from agent.clock import SystemClock
from agent.protocol import verify_chain
from tests.support.chaos_proxy import FAULTS, ChaosProxy
from tests.uplink.conftest import Rig, wait_for

RECORDS = 10_000


class Loop:
    """What the daemon does with an uploader: run a round, sleep as told, again."""

    def __init__(self, run: Callable[[], Any], delay: Callable[[], float]) -> None:
        self.run, self.delay = run, delay
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.rounds = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                self.run()
                self.rounds += 1
                self.stop.wait(self.delay())
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ten_thousand_records_through_chaos_arrive_exactly_once(rig: Rig) -> None:
    store = rig.store
    assert store is not None
    rng = random.Random(20261126)
    window = {"fake": False}
    faults = [f for f in FAULTS if f not in ("pass", "fake")]

    def schedule(n: int) -> str:
        """Every other request faulty, each fault in turn, the rest at random."""
        if window["fake"]:
            return "fake"
        if n % 2 == 0:
            return "pass" if rng.random() < 0.6 else rng.choice(faults)
        return faults[(n // 2) % len(faults)]

    proxy = ChaosProxy(
        ("127.0.0.1", rig.server.port), schedule=schedule, delay_s=0.5, retry_after_s=1
    )
    # Timeouts below the proxy's delay; backoff capped low so the test stays short
    # (Retry-After is honoured up to that cap).
    uploader = rig.uploader(
        proxy.url,
        timeout_s=0.3,
        clock=SystemClock(),  # real waits between rounds; records keep the manual clock
        batch_records=500,
        backoff_initial_s=0.01,
        backoff_max_s=0.15,
    )
    uploader.policy.upload_delay_s = 0.02
    uploader.policy.upload_interval_s = 0.1
    loop = Loop(uploader.run_once, uploader.next_delay_s)

    events: list[str] = []

    def chaos_events() -> None:
        """Whole-network events on a timer while the taps come in."""
        cycle = ["refuse", "restart", "fake", "refuse", "fake", "restart"]
        for index in range(60):
            if writer_done.wait(0.7):
                return
            event = cycle[index % len(cycle)]
            events.append(event)
            if event == "refuse":
                proxy.refuse(True)
                time.sleep(0.3)
                proxy.refuse(False)
            elif event == "restart":
                server = rig.restart_server()
                proxy.upstream = ("127.0.0.1", server.port)
            else:
                window["fake"] = True
                time.sleep(0.3)
                window["fake"] = False

    writer_done = threading.Event()
    chaos = threading.Thread(target=chaos_events, daemon=True)
    loop.thread.start()
    chaos.start()
    started = time.monotonic()
    extra = 0
    try:
        rig.write(RECORDS)
        # A fast machine can write them all before every fault came round: keep
        # taps coming, a few at a time, until each kind has been injected.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(proxy.counts[f] > 0 for f in FAULTS):
            rig.write(5, start=RECORDS + extra)
            extra += 5
            time.sleep(0.05)
        writer_done.set()
        chaos.join(10)
        window["fake"] = False
        proxy.refuse(False)
        proxy.schedule = None  # the network heals
        wait_for(lambda: store.pending_count == 0, 40, "the device to hold nothing unacknowledged")
    finally:
        writer_done.set()
        loop.stop.set()
        loop.thread.join(10)
        proxy.stop()
    elapsed = time.monotonic() - started
    assert loop.errors == []

    stored = rig.stored()
    written = store.written
    seqs = [r["seq"] for r in stored]
    assert seqs == sorted(set(seqs)), "a seq stored twice"
    assert seqs == list(range(1, len(written) + 1)), "the portal's chain differs from the device's"
    assert all(r["hash"] == written[r["seq"]]["hash"] for r in stored)
    assert sum(1 for r in stored if r["type"] == "badge") == RECORDS + extra
    assert verify_chain(stored, rig.key.public_key(), rig.device_id).ok
    assert store.pending_count == 0 and store.last_ack[0] == len(written)

    # The chaos really happened, and only the fake portal raised alarms.
    for fault in FAULTS:
        assert proxy.counts[fault] > 0, f"no {fault} fault was injected"
    assert {"refuse", "restart", "fake"} <= set(events)
    kinds = {a["data"]["kind"] for a in store.alarms()}
    assert kinds == {"receipt_signature"}
    assert list(store.buffer.layout.quarantine.iterdir()) == []
    print(
        f"\nchaos: {elapsed:.1f} s, {loop.rounds} rounds, "
        f"faults {dict(proxy.counts)}, events {events}"
    )
