"""The uploader against the real portal under uvicorn (and, for answers a real portal
never gives, a stand-in portal behind httpx's MockTransport)."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, update

from agent.buffer.buffer import RecordBuffer
from agent.clock import ManualClock
from agent.config import BufferConfig
from agent.exceptions import ConfigError, PortalRefused
from agent.protocol import build_receipt, build_record, public_key_b64, verify_chain
from agent.uplink.client import PortalClient
from agent.uplink.codec import encode_record
from agent.uplink.policy import UploadPolicy
from agent.uplink.uploader import Uploader
from portal.db.schema import devices, records
from portal.registry import revoke_device
from tests.support.chaos_proxy import ChaosProxy
from tests.uplink.conftest import RecordingStore, Rig


def _seqs(stored: list[dict[str, Any]]) -> list[int]:
    return [r["seq"] for r in stored]


def test_uploads_everything_and_frees_the_buffer(rig: Rig) -> None:
    assert rig.store is not None
    rig.write(1200)
    uploader = rig.uploader(batch_records=250)
    result = uploader.run_once()
    assert (result.uploaded, result.pending, result.error) == (1200, 0, None)
    assert _seqs(rig.stored()) == list(range(1, 1201))
    assert rig.store.last_ack[0] == 1200
    assert uploader.last_receipt_server_ms is not None
    # The next record carries the newest receipt's hash as its anchor.
    rig.write(1)
    assert rig.store.written[1201]["anchor"] == rig.store.buffer.anchor != ""


def test_batches_respect_the_byte_limit(rig: Rig) -> None:
    rig.write(40)
    proxy = ChaosProxy(("127.0.0.1", rig.server.port))
    try:
        uploader = rig.uploader(proxy.url, batch_records=500, batch_bytes=2000)
        assert uploader.run_once().error is None
    finally:
        proxy.stop()
    assert rig.store is not None
    size = max(len(encode_record(r)) for r in rig.store.written.values())
    per_batch = 2000 // size
    assert per_batch >= 2
    assert sum(proxy.counts.values()) == -(-40 // per_batch)
    assert _seqs(rig.stored()) == list(range(1, 41))


def test_plain_http_needs_insecure() -> None:
    with pytest.raises(ConfigError, match="plain http"):
        PortalClient("http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="https"):
        PortalClient("ftp://portal.example")


def test_enroll_refusal_is_one_line(rig: Rig) -> None:
    with (
        PortalClient(rig.server.url, insecure=True) as client,
        pytest.raises(PortalRefused, match="401") as caught,
    ):
        client.enroll("not-a-token", public_key_b64(Ed25519PrivateKey.generate()), "t", {})
    assert "\n" not in str(caught.value)


# --- receipts that must not delete anything ---------------------------------------


def test_fake_portal_with_another_key_never_frees_records(rig: Rig) -> None:
    assert rig.store is not None
    rig.write(30)
    proxy = ChaosProxy(("127.0.0.1", rig.server.port))
    proxy.mode = "fake"
    try:
        uploader = rig.uploader(proxy.url)
        for _ in range(3):
            result = uploader.run_once()
            assert result.error is not None and "signature" in result.error
            requests = sum(proxy.counts.values())
            assert uploader.run_once().error == result.error  # backing off: nothing sent
            assert sum(proxy.counts.values()) == requests
            rig.clock.advance(1)
        assert rig.store.pending_count == 31  # 30 taps and one alarm, nothing freed
        assert rig.store.last_ack == (0, "")
        alarms = rig.store.alarms()
        assert [a["data"]["kind"] for a in alarms] == ["receipt_signature"]
        assert rig.stored() == []  # the real portal saw nothing
        proxy.mode = "pass"  # the real portal again
        result = uploader.run_once()
    finally:
        proxy.stop()
    assert (result.error, result.pending) == (None, 0)
    assert _seqs(rig.stored()) == list(range(1, 32))


def test_clone_under_the_same_id_never_frees_records(rig: Rig, tmp_path: Path) -> None:
    """The portal holds another device's chain under this id (a cloned key): the
    answers are genuinely signed, but name hashes this device never made."""
    rig.write(10)
    assert rig.uploader().run_once().error is None  # the original's chain is at the portal
    clock = ManualClock(wall_ms=1_750_000_000_000)
    clone_buffer = RecordBuffer(tmp_path / "clone", clock=clock).open()
    try:
        clone = RecordingStore(clone_buffer, rig.key, rig.device_id, clock)
        for uid in range(15):
            clone.write(
                "badge", {"reader": "r", "driver": "simulated", "uid": f"{uid:08X}", "uid_len": 4}
            )
        uploader = Uploader(
            clone,
            PortalClient(rig.server.url, insecure=True),
            UploadPolicy(backoff_initial_s=0.01, backoff_max_s=0.05),
            rig.portal_key,
            rig.device_id,
            clock,
        )
        first = uploader.run_once()
        clock.advance(1)
        second = uploader.run_once()
        assert first.halted and second.halted
        assert "fork" in (first.error or "")
        assert clone.pending_count == 16  # 15 taps and the alarm: nothing freed
        assert clone.last_ack == (0, "")
        kinds = [a["data"]["kind"] for a in clone.alarms()]
        assert kinds == ["upload_refused_fork"]  # once, not once per round
    finally:
        clone_buffer.close()
    assert _seqs(rig.stored()) == list(range(1, 11))  # the portal kept the original


def _stand_in(
    key: Ed25519PrivateKey, answer: Callable[[list[dict[str, Any]]], tuple[int, dict[str, Any]]]
) -> httpx.MockTransport:
    """A portal stand-in: ``answer(records)`` gives status and body for each upload."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(gzip.decompress(request.content)) if request.content else {}
        status, payload = answer(body.get("records", [body.get("record")]))
        return httpx.Response(status, json=payload)

    return httpx.MockTransport(handle)


def _stand_in_uploader(
    store: RecordingStore, device_id: str, key: Ed25519PrivateKey, transport: httpx.MockTransport
) -> Uploader:
    client = PortalClient("http://portal.test", insecure=True, transport=transport)
    return Uploader(
        store,
        client,
        UploadPolicy(backoff_initial_s=1, backoff_max_s=60),
        public_key_b64(key),
        device_id,
        ManualClock(),
    )


def test_receipt_with_unknown_hash_deletes_nothing_and_alarms_once(rig: Rig) -> None:
    assert rig.store is not None
    portal_key = Ed25519PrivateKey.generate()  # pinned: its signatures verify

    def answer(batch: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        receipt = build_receipt(
            portal_key,
            device=rig.device_id,
            seq=batch[-1]["seq"],
            record_hash="ab" * 32,
            server_ms=1,
        )
        return 200, {"receipt": receipt, "accepted": len(batch), "duplicates": 0}

    rig.write(20)
    uploader = _stand_in_uploader(
        rig.store, rig.device_id, portal_key, _stand_in(portal_key, answer)
    )
    delays = []
    for _ in range(4):
        result = uploader.run_once(force=True)
        assert result.error is not None and "unknown to this device" in result.error
        delays.append(uploader.next_delay_s())
    assert rig.store.pending_count == 21 and rig.store.last_ack == (0, "")
    assert [a["data"]["kind"] for a in rig.store.alarms()] == ["receipt_unknown_hash"]
    assert all(d < 60 for d in delays) and uploader.policy.backoff.failures == 4


def test_a_200_whose_receipt_covers_none_of_the_batch_ends_the_round(rig: Rig) -> None:
    """A genuine receipt, but for a seq below the batch: acting on it frees nothing,
    and sending the batch again would get the same answer forever."""
    assert rig.store is not None
    portal_key = Ed25519PrivateKey.generate()
    rig.write(10)
    written = rig.store.written
    sent: list[int] = []

    def answer(batch: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        sent.append(batch[0]["seq"])
        if len(sent) > 20:  # bounds the test should the uploader loop
            return 503, {"error": "unavailable"}
        # The first answer takes 1..4 of 1..10; every later one names seq 4 again.
        receipt = build_receipt(
            portal_key, device=rig.device_id, seq=4, record_hash=written[4]["hash"], server_ms=1
        )
        return 200, {"receipt": receipt, "accepted": len(batch), "duplicates": 0}

    uploader = _stand_in_uploader(
        rig.store, rig.device_id, portal_key, _stand_in(portal_key, answer)
    )
    result = uploader.run_once()
    assert result.error is not None and "covers none of seq 5.." in result.error
    assert sent == [1, 5]
    assert (result.uploaded, rig.store.last_ack[0], rig.store.pending_count) == (4, 4, 6)
    assert uploader.run_once().error == result.error  # backing off: nothing sent
    assert sent == [1, 5]


def test_409_acts_on_a_known_receipt_and_resends_from_expected(rig: Rig) -> None:
    assert rig.store is not None
    portal_key = Ed25519PrivateKey.generate()
    rig.write(12)
    written = rig.store.written
    sent: list[int] = []

    def answer(batch: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        sent.append(batch[0]["seq"])
        last = batch[-1]
        if len(sent) == 1:  # the portal holds 1..5 already and expects 6
            receipt = build_receipt(
                portal_key, device=rig.device_id, seq=5, record_hash=written[5]["hash"], server_ms=1
            )
            return 409, {"error": "gap", "expected_seq": 6, "receipt": receipt}
        receipt = build_receipt(
            portal_key, device=rig.device_id, seq=last["seq"], record_hash=last["hash"], server_ms=2
        )
        return 200, {"receipt": receipt, "accepted": len(batch), "duplicates": 0}

    uploader = _stand_in_uploader(
        rig.store, rig.device_id, portal_key, _stand_in(portal_key, answer)
    )
    result = uploader.run_once()
    assert result.error is None and result.pending == 0
    assert sent == [1, 6]


def test_409_below_the_last_ack_deletes_nothing(rig: Rig) -> None:
    """The portal was restored from an old backup: it expects a seq this device was
    already given a receipt for. Nothing is freed, one alarm, no tight loop."""
    assert rig.store is not None
    rig.write(20)
    uploader = rig.uploader()
    assert uploader.run_once().error is None
    with rig.portal.engine.begin() as conn:  # the restore: the portal forgets 11..20
        conn.execute(
            delete(records).where(records.c.device_id == rig.device_id, records.c.seq > 10)
        )
        conn.execute(
            update(devices)
            .where(devices.c.device_id == rig.device_id)
            .values(head_seq=10, head_hash=rig.store.written[10]["hash"])
        )
    rig.write(5, start=100)
    for _ in range(3):
        result = uploader.run_once()
        assert result.error is not None and "below the last acknowledged" in result.error
        rig.clock.advance(1)
    assert rig.store.pending_count == 6  # 5 taps and the alarm
    assert rig.store.last_ack[0] == 20
    assert [a["data"]["kind"] for a in rig.store.alarms()] == ["receipt_below_ack"]


# --- refused records: quarantine, alarm, gap, and on -------------------------------


def _bad_record(rig: Rig, fault: str) -> dict[str, Any]:
    assert rig.buffer is not None
    reading = rig.clock.read()
    record = build_record(
        rig.key,
        device=rig.device_id,
        seq=rig.buffer.next_seq,
        prev=rig.buffer.head[1],
        type="badge",
        wall_ms=reading.wall_ms,
        synced=True,
        boot=reading.boot,
        mono_ns=reading.mono_ns,
        anchor=rig.buffer.anchor,
        data={"reader": "door1", "driver": "simulated", "uid": "DEADBEEF", "uid_len": 4},
    )
    if fault == "encoding":
        record["data"]["uid_len"] = 4.5
    elif fault == "hash":
        record["data"]["uid"] = "FEEDFACE"
    else:
        other = build_record(
            Ed25519PrivateKey.generate(),
            **{
                k: record[k]
                for k in (
                    "device",
                    "seq",
                    "prev",
                    "type",
                    "wall_ms",
                    "synced",
                    "boot",
                    "mono_ns",
                    "anchor",
                    "data",
                )
            },
        )
        record["sig"] = other["sig"]
    return record


@pytest.mark.parametrize("fault", ["encoding", "hash", "signature"])
def test_refused_record_is_quarantined_declared_and_the_chain_goes_on(rig: Rig, fault: str) -> None:
    assert rig.store is not None and rig.buffer is not None
    rig.write(10)
    bad = _bad_record(rig, fault)
    rig.buffer.append(bad)  # as a bug or a bit flip would have stored it
    rig.write(10, start=50)
    uploader = rig.uploader()
    result = uploader.run_once()
    assert result.error is None and result.pending == 0
    stored = rig.stored()
    # 1..10, then the hole at 11, then 12..21, the gap record 22 and the alarm 23.
    assert _seqs(stored) == [*range(1, 11), *range(12, 24)]
    gap, alarm = stored[-2], stored[-1]
    assert gap["type"] == "gap"
    assert (gap["data"]["first_seq"], gap["data"]["last_seq"]) == (11, 11)
    assert gap["data"]["last_hash"] == bad["hash"] == stored[10]["prev"]
    assert alarm["type"] == "alarm" and alarm["data"]["kind"] == f"record_refused_{fault}"
    evidence = list((rig.buffer.layout.quarantine).glob("record-000000000011.refused*"))
    assert len(evidence) == 1 and bad["sig"].encode() in evidence[0].read_bytes()
    assert verify_chain(stored, rig.key.public_key(), rig.device_id).ok
    # And the chain keeps going afterwards.
    rig.write(3, start=90)
    assert uploader.run_once().error is None
    assert _seqs(rig.stored())[-3:] == [24, 25, 26]


def test_portal_refusal_of_a_sound_record_halts_without_quarantine(rig: Rig) -> None:
    """A pinned portal claiming a record is badly signed when it is not: keep it, stop."""
    assert rig.store is not None
    portal_key = Ed25519PrivateKey.generate()

    def answer(batch: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        receipt = build_receipt(
            portal_key, device=rig.device_id, seq=0, record_hash="0" * 64, server_ms=1
        )
        return 422, {"error": "rejected", "seq": 1, "reason": "signature", "receipt": receipt}

    rig.write(5)
    uploader = _stand_in_uploader(
        rig.store, rig.device_id, portal_key, _stand_in(portal_key, answer)
    )
    uploader._device_key = rig.key.public_key()
    result = uploader.run_once()
    assert result.halted and "checks out here" in (result.error or "")
    assert rig.buffer is not None
    assert list(rig.buffer.layout.quarantine.glob("record-*")) == []
    assert rig.store.pending_count == 6


# --- the portal says stop ----------------------------------------------------------


def test_revoked_device_halts_alarms_once_and_probes_the_cursor(rig: Rig) -> None:
    assert rig.store is not None
    rig.write(5)
    revoke_device(rig.portal.engine, rig.device_id, now=rig.portal.clock())
    proxy = ChaosProxy(("127.0.0.1", rig.server.port))
    try:
        uploader = rig.uploader(proxy.url, backoff_max_s=0.05)
        first = uploader.run_once()
        assert first.halted and "403" in (first.error or "")
        assert uploader.next_delay_s() == pytest.approx(0.05)
        before = sum(proxy.counts.values())
        assert uploader.run_once().halted  # before the delay: nothing sent
        assert sum(proxy.counts.values()) == before
        rig.clock.advance(1)
        second = uploader.run_once()
        assert second.halted
        assert sum(proxy.counts.values()) == before + 1  # one cursor request, no batch
    finally:
        proxy.stop()
    assert rig.store.pending_count == 6
    assert [a["data"]["kind"] for a in rig.store.alarms()] == ["upload_refused_revoked"]


def test_retry_after_is_honoured(rig: Rig) -> None:
    rig.write(3)
    proxy = ChaosProxy(("127.0.0.1", rig.server.port), retry_after_s=7)
    proxy.mode = "429"
    try:
        uploader = rig.uploader(proxy.url, backoff_initial_s=0.01, backoff_max_s=100)
        result = uploader.run_once()
        assert result.error is not None and "429" in result.error
        assert uploader.next_delay_s() == pytest.approx(7)
        proxy.mode = "503"
        uploader.run_once(force=True)
        assert uploader.next_delay_s() == pytest.approx(7)
        proxy.mode = "500"
        uploader.run_once(force=True)
        assert uploader.next_delay_s() < 0.01 * 2**3
    finally:
        proxy.stop()


# --- records lost on the device -----------------------------------------------------


def test_newest_segment_lost_after_the_portal_got_part_of_it(rig: Rig) -> None:
    """The device sent 1..135, the answer never came back, then power loss took its
    newest segment (129..): it declares 129..192 with an unknown last hash, and the
    portal, which holds up to 135, bridges from there."""
    assert rig.buffer is not None
    rig.buffer.close()
    config = BufferConfig(segment_records=64)
    store = rig.open_store(config)
    rig.write(140)
    with PortalClient(rig.server.url, insecure=True) as client:  # the lost exchange
        assert client.post_records(rig.device_id, store.pending(limit=135)).status == 200
    assert rig.buffer is not None
    rig.buffer.close()
    newest = sorted(rig.buffer.layout.segments.iterdir())[-1]
    assert newest.name == "seg-000000000129.log"
    newest.unlink()
    store = rig.open_store(config)
    assert [(r.first_seq, r.last_seq, r.last_hash) for r in store.buffer.lost_ranges] == [
        (129, 192, "")
    ]
    rig.write(5, start=500)  # the gap record (193) goes first, then 194..198
    result = rig.uploader().run_once()
    assert (result.error, result.pending) == (None, 0)
    stored = rig.stored()
    assert _seqs(stored) == [*range(1, 136), *range(193, 199)]
    assert stored[135]["type"] == "gap" and stored[135]["prev"] == "0" * 64
    assert verify_chain(stored, rig.key.public_key(), rig.device_id).ok
    assert store.alarms() == []


def test_413_halves_the_batch_until_the_portal_takes_it(rig: Rig) -> None:
    """A portal configured for smaller batches than the device's setting."""
    rig.portal.settings = dataclasses.replace(rig.portal.settings, max_batch_records=40)
    rig.write(300)
    uploader = rig.uploader(batch_records=200)
    result = uploader.run_once()
    assert (result.error, result.pending) == (None, 0)
    assert uploader.policy.max_records == 25  # 200 -> 100 -> 50 -> 25
    assert _seqs(rig.stored()) == list(range(1, 301))
