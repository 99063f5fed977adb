"""The sans-I/O upload policy: batches, backoff, Retry-After, answer classes, receipts."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import PortalConfig
from agent.protocol import build_receipt
from agent.uplink.codec import PortalAnswer
from agent.uplink.policy import (
    Action,
    Backoff,
    UploadPolicy,
    check_receipt,
    classify,
    contiguous_run,
    parse_retry_after,
    take_batch,
)

H1, H2 = "1" * 64, "2" * 64


# --- batching -----------------------------------------------------------------------


def test_batch_limited_by_record_count() -> None:
    assert take_batch([10] * 1000, 500, 10**9) == 500


def test_batch_limited_by_bytes() -> None:
    # 100-byte records, 1,000-byte budget: ten fit, the eleventh would not.
    assert take_batch([100] * 50, 500, 1000) == 10
    assert take_batch([100] * 50, 500, 999) == 9


def test_batch_always_takes_one_record_even_if_too_big() -> None:
    assert take_batch([5000, 10], 500, 1000) == 1


def test_batch_of_nothing() -> None:
    assert take_batch([], 500, 1000) == 0


def test_contiguous_run_stops_at_a_hole() -> None:
    assert contiguous_run([5, 6, 7, 9, 10], 5) == 3
    assert contiguous_run([5, 6], 5) == 2
    assert contiguous_run([], 5) == 0


def test_policy_shrinks_after_413_down_to_one() -> None:
    policy = UploadPolicy(batch_records=8)
    sizes = [1] * 100
    assert policy.batch_size(sizes) == 8
    assert policy.too_large() and policy.batch_size(sizes) == 4
    assert policy.too_large() and policy.too_large()
    assert policy.batch_size(sizes) == 1
    assert not policy.too_large()


def test_policy_from_config() -> None:
    policy = UploadPolicy.from_config(
        PortalConfig(batch_records=7, batch_bytes=99, upload_delay_ms=300, upload_interval_s=12)
    )
    assert (policy.batch_records, policy.batch_bytes) == (7, 99)
    assert policy.next_delay_s(pending=3) == pytest.approx(0.3)
    assert policy.next_delay_s(pending=0) == 12


# --- backoff ------------------------------------------------------------------------


def test_backoff_bounds_double_up_to_the_cap() -> None:
    backoff = Backoff(1.0, 60.0, rand=lambda: 0.999999)
    delays = [backoff.failure() for _ in range(10)]
    ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling * 0.99 <= delay < ceiling


def test_backoff_full_jitter_spans_zero_to_ceiling() -> None:
    rng = random.Random(7)
    samples = []
    for _ in range(2000):
        backoff = Backoff(1.0, 300.0, rand=rng.random)
        backoff.failures = 4  # ceiling 16 s
        samples.append(backoff.failure())
    assert min(samples) >= 0 and max(samples) < 16
    assert min(samples) < 1 and max(samples) > 15  # full jitter: the whole range
    assert 6 < sum(samples) / len(samples) < 10  # uniform: mean near 8


def test_backoff_resets_on_success() -> None:
    backoff = Backoff(1.0, 300.0, rand=lambda: 0.5)
    for _ in range(5):
        backoff.failure()
    backoff.success()
    assert backoff.failure() == 0.5


def test_backoff_survives_many_failures() -> None:
    backoff = Backoff(1.0, 300.0, rand=lambda: 0.5)
    backoff.failures = 10_000
    assert backoff.failure() == 150.0


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(0, 10)
    with pytest.raises(ValueError, match="initial"):
        Backoff(5, 1)


def test_policy_delay_is_backoff_after_failure_and_resets() -> None:
    policy = UploadPolicy(backoff_initial_s=2, backoff_max_s=100, rand=lambda: 0.5)
    assert policy.failed() == 1.0
    assert policy.failed() == 2.0
    assert policy.next_delay_s(pending=10) == 2.0
    policy.succeeded()
    assert policy.next_delay_s(pending=10) == policy.upload_delay_s


def test_policy_retry_after_wins_but_is_capped() -> None:
    policy = UploadPolicy(backoff_initial_s=1, backoff_max_s=100, rand=lambda: 0.5)
    assert policy.failed(retry_after_s=42) == 42
    assert policy.failed(retry_after_s=10_000) == 100
    assert policy.failed(retry_after_s=0) == 0


def test_policy_halted_waits_the_cap() -> None:
    policy = UploadPolicy(backoff_initial_s=1, backoff_max_s=77)
    assert policy.halted() == 77
    assert policy.next_delay_s(pending=5) == 77


# --- Retry-After --------------------------------------------------------------------


def test_retry_after_seconds() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0


def test_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    when = datetime.fromtimestamp(now + 90, UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), now) == pytest.approx(90, abs=1)
    past = datetime.fromtimestamp(now - 90, UTC)
    assert parse_retry_after(format_datetime(past, usegmt=True), now) == 0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5"])
def test_retry_after_unusable(value: str | None) -> None:
    assert parse_retry_after(value) is None


# --- answer classes -----------------------------------------------------------------

RECEIPT = {"v": 1, "seq": 3}


def _answer(status: int, body: dict[str, object] | None = None, **kw: str) -> PortalAnswer:
    return PortalAnswer(status, body, retry_after=kw.get("retry_after"))


def test_classify_200_acknowledges() -> None:
    decision = classify(_answer(200, {"receipt": RECEIPT, "accepted": 3}))
    assert decision.action is Action.ACK and decision.receipt == RECEIPT


def test_classify_200_without_receipt_retries() -> None:
    assert classify(_answer(200, {"accepted": 3})).action is Action.RETRY
    assert classify(PortalAnswer(200, None, detail="answer is not JSON")).action is Action.RETRY


def test_classify_409_resyncs_from_expected() -> None:
    decision = classify(_answer(409, {"error": "gap", "expected_seq": 4, "receipt": RECEIPT}))
    assert decision.action is Action.RESYNC and decision.seq == 4
    assert classify(_answer(409, {"error": "gap"})).action is Action.RETRY


@pytest.mark.parametrize("reason", ["encoding", "hash", "signature"])
def test_classify_422_record_faults_quarantine(reason: str) -> None:
    body = {"error": "rejected", "seq": 9, "reason": reason, "receipt": RECEIPT}
    decision = classify(_answer(422, body))
    assert decision.action is Action.QUARANTINE
    assert (decision.seq, decision.reason, decision.receipt) == (9, reason, RECEIPT)


@pytest.mark.parametrize("reason", ["fork", "link", "device", "regression", "whatever"])
def test_classify_422_chain_disputes_halt(reason: str) -> None:
    body = {"error": "rejected", "seq": 9, "reason": reason, "receipt": RECEIPT}
    decision = classify(_answer(422, body))
    assert decision.action is Action.HALT
    assert decision.alarm_kind == f"upload_refused_{reason}"


def test_classify_422_gap_mid_batch_resyncs() -> None:
    body = {"error": "rejected", "seq": 9, "reason": "gap", "receipt": RECEIPT}
    assert classify(_answer(422, body)).action is Action.RESYNC


def test_classify_422_without_seq_retries() -> None:
    assert classify(_answer(422, {"error": "rejected", "reason": "hash"})).action is Action.RETRY


@pytest.mark.parametrize("status", [403, 404])
def test_classify_unknown_or_revoked_device_halts(status: int) -> None:
    decision = classify(_answer(status, {"error": "x", "detail": "y"}))
    assert decision.action is Action.HALT
    assert "HTTP" in decision.detail


def test_classify_413_shrinks() -> None:
    assert classify(_answer(413, {"error": "too_large"})).action is Action.SHRINK


@pytest.mark.parametrize("status", [429, 503])
def test_classify_429_503_wait_as_told(status: int) -> None:
    decision = classify(_answer(status, {"error": "busy"}, retry_after="12"))
    assert decision.action is Action.WAIT and decision.retry_after_s == 12
    assert classify(_answer(status, None)).retry_after_s is None


@pytest.mark.parametrize("status", [400, 401, 500, 502, 504, 302, 201])
def test_classify_everything_else_backs_off(status: int) -> None:
    assert classify(_answer(status, {"error": "x"})).action is Action.RETRY


def test_describe_names_reason_and_seq() -> None:
    body = {"error": "rejected", "seq": 9, "reason": "fork", "detail": "another record"}
    assert _answer(422, body).describe() == "HTTP 422 rejected (fork at seq 9): another record"


# --- receipts -----------------------------------------------------------------------

PORTAL = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def _receipt(key: Ed25519PrivateKey, seq: int, record_hash: str, device: str = "d1") -> dict:  # type: ignore[type-arg]
    return build_receipt(key, device=device, seq=seq, record_hash=record_hash, server_ms=1)


def _knows(seq: int, record_hash: str) -> bool:
    return (seq, record_hash) in {(5, H1), (6, H2)}


def test_receipt_from_pinned_key_with_known_hash_is_accepted() -> None:
    verdict = check_receipt(_receipt(PORTAL, 6, H2), PORTAL.public_key(), "d1", _knows, (5, H1))
    assert verdict.receipt is not None and verdict.problem == ""


def test_receipt_signed_by_another_key_is_refused() -> None:
    verdict = check_receipt(_receipt(OTHER, 6, H2), PORTAL.public_key(), "d1", _knows, (5, H1))
    assert verdict.receipt is None and verdict.kind == "receipt_signature"


def test_receipt_for_another_device_is_refused() -> None:
    receipt = _receipt(PORTAL, 6, H2, device="d2")
    verdict = check_receipt(receipt, PORTAL.public_key(), "d1", _knows, (5, H1))
    assert verdict.receipt is None and "d2" in verdict.problem


def test_receipt_with_unknown_hash_is_refused() -> None:
    verdict = check_receipt(_receipt(PORTAL, 6, H1), PORTAL.public_key(), "d1", _knows, (5, H1))
    assert verdict.receipt is None and verdict.kind == "receipt_unknown_hash"


def test_receipt_below_last_ack_is_refused() -> None:
    verdict = check_receipt(_receipt(PORTAL, 4, H1), PORTAL.public_key(), "d1", _knows, (5, H1))
    assert verdict.receipt is None and verdict.kind == "receipt_below_ack"


@pytest.mark.parametrize("junk", [None, "receipt", {"seq": 6}, {}])
def test_receipt_junk_is_refused(junk: object) -> None:
    verdict = check_receipt(junk, PORTAL.public_key(), "d1", _knows, (5, H1))
    assert verdict.receipt is None and verdict.kind == "receipt_signature"


def test_tampered_receipt_is_refused() -> None:
    receipt = _receipt(PORTAL, 6, H2)
    receipt["seq"] = 5
    verdict = check_receipt(receipt, PORTAL.public_key(), "d1", _knows, (5, H1))
    assert verdict.receipt is None
