"""The thin shell that runs upload rounds: read pending, send, then acknowledge.

Decisions come from :mod:`agent.uplink.policy`, bodies from :mod:`agent.uplink.codec`;
the only I/O is the :class:`~agent.uplink.client.PortalClient` and the
:class:`~agent.records.interfaces.UploadStore`. Each
store call takes the store's lock for its own duration only, so no network
call ever runs under it (the daemon's writer keeps appending meanwhile).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from agent.clock import Clock
from agent.exceptions import (
    PortalUnreachable,
    ProtocolError,
    QatysuError,
    ReceiptError,
)
from agent.protocol import ChainVerifier, Failure, parse_gap_data, public_key_from_b64
from agent.protocol.records import check_record_shape, seal_digest
from agent.records.interfaces import UploadStore
from agent.uplink.client import PortalClient
from agent.uplink.codec import PortalAnswer, encode_record, gzip_batch
from agent.uplink.policy import (
    Action,
    Decision,
    UploadPolicy,
    check_receipt,
    classify,
    contiguous_run,
)

__all__ = ["UploadResult", "Uploader"]

logger = logging.getLogger(__name__)

_GAP_SCAN_PAGE = 2000


@dataclass(frozen=True)
class UploadResult:
    uploaded: int  # records newly covered by a verified receipt in this round
    pending: int  # records still unacknowledged after the round
    error: str | None = None  # one line; None when the round ended with nothing to send
    halted: bool = False  # sending is stopped until the portal's cursor checks out


@dataclass(frozen=True)
class _Batch:
    after: int  # read right after this seq
    limit: int  # with this record limit
    records: list[dict[str, Any]]
    body: bytes  # the gzip request body
    hole_at: int | None = None  # the first pending seq, when it lies beyond after + 1


class _RoundFailed(Exception):
    """Ends a round: ``delay`` already chosen by the policy."""


class Uploader:
    """Sends a store's pending records to the portal, one round per :meth:`run_once`.

    Thread-safe: rounds are serialised by an internal lock, and the store is
    only touched through its own (locked) methods.
    """

    def __init__(
        self,
        store: UploadStore,
        client: PortalClient,
        policy: UploadPolicy,
        portal_key_b64: str,
        device_id: str,
        clock: Clock,
        *,
        device_key_b64: str = "",
        prefetch: bool = True,
    ) -> None:
        self.store = store
        self.client = client
        self.policy = policy
        self.portal_key = public_key_from_b64(portal_key_b64)
        self.device_id = device_id
        self.clock = clock
        # With the device's public key a refused signature is confirmed locally
        # before anything goes to quarantine.
        self._device_key = public_key_from_b64(device_key_b64) if device_key_b64 else None
        self._round = threading.Lock()
        self._alarmed: set[str] = set()
        self.halted: str | None = None  # why sending is stopped
        self.last_error: str | None = None
        self.last_upload_ms: int | None = None  # wall ms of the last verified receipt
        self.last_receipt_server_ms: int | None = None
        self.alarms_written = 0
        self._not_before: float | None = None  # no attempt before this (monotonic s)
        self._pool = ThreadPoolExecutor(1, "qatysu-upload-prefetch") if prefetch else None
        self._prefetch: Future[_Batch] | None = None

    # --- the round ------------------------------------------------------------------

    def run_once(
        self,
        *,
        force: bool = False,
        until: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> UploadResult:
        """One round: send pending batches until nothing is pending or an exchange fails.

        Before the delay chosen after a failure (backoff, Retry-After, a stop)
        has passed, a round sends nothing unless ``force`` (an operator's
        ``qatysu upload``). ``until`` (the clock's monotonic seconds) ends the
        round early; ``progress(uploaded, pending)`` is called after each batch.
        """
        with self._round:
            now = self.clock.monotonic()
            if not force and self._not_before is not None and now < self._not_before:
                error = self.last_error or "waiting before the next attempt"
                return UploadResult(0, self.store.pending_count, error, self.halted is not None)
            uploaded = 0
            try:
                if self.halted is not None:
                    self._probe()
                stop_at = self.store.head[0]
                while until is None or self.clock.monotonic() < until:
                    freed = self._step(stop_at)
                    if freed is None:
                        break
                    uploaded += freed
                    if progress is not None:
                        progress(uploaded, self.store.pending_count)
            except _RoundFailed as exc:
                self._claim_prefetched(-1)  # a new round reads afresh
                self.last_error = str(exc)
                self._not_before = self.clock.monotonic() + self.policy.current_delay_s()
                return UploadResult(
                    uploaded, self.store.pending_count, str(exc), self.halted is not None
                )
            self._claim_prefetched(-1)
            self.policy.succeeded()
            self.last_error = None
            self._not_before = None
            return UploadResult(uploaded, self.store.pending_count)

    def next_delay_s(self) -> float:
        """Seconds until the loop should call :meth:`run_once` again."""
        if self._not_before is not None:
            return max(0.0, self._not_before - self.clock.monotonic())
        return self.policy.next_delay_s(self.store.pending_count)

    def _step(self, stop_at: int) -> int | None:
        """Send the next batch (or declare the next hole); None when there is nothing to send."""
        last_ack = self.store.last_ack[0]
        batch = self._claim_prefetched(last_ack) or self._prepare(last_ack, stop_at)
        if batch.hole_at is not None:
            return self._declare_hole(last_ack + 1, batch.hole_at)
        if not batch.records:
            return None
        records = batch.records
        if self._pool is not None:
            # Read and encode the next batch while the portal works on this one.
            self._prefetch = self._pool.submit(self._prepare, records[-1]["seq"], stop_at)
        answer = self._exchange(lambda: self.client.post_body(self.device_id, batch.body))
        decision = classify(answer, self.clock.read().wall_ms / 1000)
        logger.debug("batch %d..%d: %s", records[0]["seq"], records[-1]["seq"], decision.detail)
        return self._act(decision, records)

    def _prepare(self, after: int, stop_at: int) -> _Batch:
        """The next batch after seq ``after``: contiguous, within the policy's limits."""
        limit = self.policy.max_records
        records = self.store.pending(limit=limit, after_seq=after)
        if not records or records[0]["seq"] > stop_at:  # newer records wait for the next round
            return _Batch(after, limit, [], b"")
        first = records[0]["seq"]
        if first > after + 1:
            return _Batch(after, limit, [], b"", hole_at=first)
        run = contiguous_run([r["seq"] for r in records], first)
        parts = [encode_record(r) for r in records[:run]]
        count = self.policy.batch_size([len(p) for p in parts])
        return _Batch(after, limit, records[:count], gzip_batch(parts[:count]))

    def _claim_prefetched(self, last_ack: int) -> _Batch | None:
        """The prefetched batch if it was read right after ``last_ack`` with today's limits."""
        future, self._prefetch = self._prefetch, None
        if future is None:
            return None
        try:
            batch = future.result()
        except Exception:  # read again in this thread, where errors surface
            return None
        if batch.after != last_ack or batch.limit != self.policy.max_records:
            return None
        return batch

    def close(self) -> None:
        """Stop the prefetch thread (the client is the caller's to close)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _act(self, decision: Decision, batch: Sequence[dict[str, Any]]) -> int:
        action = decision.action
        if action is Action.ACK:
            freed = self._acknowledge_or_bridge(decision.receipt)
            if self.store.last_ack[0] < batch[0]["seq"]:
                # A 200 that covers none of the batch: going on would resend forever.
                self._fail(
                    f"portal answered 200 but its receipt covers none of seq {batch[0]['seq']}.."
                )
            return freed
        if action is Action.RESYNC:
            before = self.store.last_ack[0]
            freed = self._acknowledge_or_bridge(decision.receipt)
            if self.store.last_ack[0] == before:
                self._fail(f"{decision.detail}: no progress (portal expects seq {decision.seq})")
            return freed
        if action is Action.QUARANTINE:
            return self._quarantine(decision, batch)
        if action is Action.HALT:
            self._halt(decision)
        if action is Action.SHRINK:
            if self.policy.too_large():
                logger.warning(
                    "%s: batches now at most %d records", decision.detail, self.policy.max_records
                )
                return 0
            self._halt(
                Decision(
                    Action.HALT, f"{decision.detail}: one record is too large", reason="too_large"
                )
            )
        if action is Action.WAIT:
            self._fail(decision.detail, decision.retry_after_s)
        self._fail(decision.detail)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- receipts --------------------------------------------------------------------

    def _acknowledge(self, receipt: object) -> int:
        """Act on a receipt that checks out (docs/protocol.md); else alarm, fail the round."""
        freed, kind, problem = self._try_acknowledge(receipt)
        if problem:
            self._alarm(kind, problem)
            self._fail(problem)
        return freed

    def _try_acknowledge(self, receipt: object) -> tuple[int, str, str]:
        """(freed, alarm kind, problem); deletes only what a checked receipt covers."""
        verdict = check_receipt(
            receipt, self.portal_key, self.device_id, self.store.knows, self.store.last_ack
        )
        checked = verdict.receipt
        if checked is None:
            return 0, verdict.kind, verdict.problem
        last_ack = self.store.last_ack
        if checked["seq"] == 0 or (checked["seq"], checked["record_hash"]) == last_ack:
            self._received(checked)
            return 0, "", ""  # nothing new covered (or the portal holds nothing yet)
        try:
            freed = self.store.acknowledge(checked)
        except ReceiptError as exc:  # the store changed between the check and now
            return 0, "receipt_unknown_hash", str(exc)
        except (QatysuError, ProtocolError, OSError) as exc:  # the state file could not be written
            return 0, "acknowledge_failed", f"acknowledging seq {checked['seq']} failed: {exc}"
        self._received(checked)
        self._alarmed.clear()  # a good receipt ends an episode: alarm again next time
        return freed, "", ""

    def _received(self, receipt: dict[str, Any]) -> None:
        self.last_receipt_server_ms = receipt["server_ms"]
        self.last_upload_ms = self.clock.read().wall_ms

    # --- holes and refused records ---------------------------------------------------

    def _declare_hole(self, expected: int, first: int) -> int:
        """Records expected..first-1 are gone here: send the gap record declaring them alone."""
        gap = self._find_gap(expected, first)
        if gap is None:
            self.store.declare_losses()
            gap = self._find_gap(expected, first)
        if gap is None:
            problem = f"records {expected}..{first - 1} are missing and no gap record declares them"
            self._alarm("undeclared_hole", problem)
            self._fail(problem)
        assert gap is not None
        return self._post_gap(gap, expected)

    def _acknowledge_or_bridge(self, receipt: object) -> int:
        """Acknowledge; but a genuine receipt for a seq inside a hole this device has
        declared means the portal got part of the lost records before they were lost
        here: declare the hole from there (its receipt names a hash this device knows)."""
        freed, kind, problem = self._try_acknowledge(receipt)
        if not problem:
            return freed
        if kind == "receipt_unknown_hash" and isinstance(receipt, dict):
            portal_next = receipt["seq"] + 1  # the signature checked: the fields are sound
            gap = self._find_gap(portal_next, None)
            if gap is not None:
                logger.warning("the portal holds seq %d, lost here: declaring", receipt["seq"])
                return self._post_gap(gap, portal_next)
        self._alarm(kind, problem)
        self._fail(problem)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post_gap(self, gap: dict[str, Any], expected: int) -> int:
        """Send one gap record alone to ``/gaps`` and act on the answer."""
        last_seq = gap["data"]["last_seq"]
        answer = self._exchange(lambda: self.client.post_gap(self.device_id, gap))
        decision = classify(answer, self.clock.read().wall_ms / 1000)
        logger.info("gap record %d for %d..%d: %s", gap["seq"], expected, last_seq, decision.detail)
        if decision.action is Action.ACK:
            freed = self._acknowledge(decision.receipt)
            if self.store.last_ack[0] < last_seq:
                self._fail(
                    f"declaring {expected}..{last_seq}: receipt does not reach the hole's end"
                )
            return freed
        if decision.action in (Action.QUARANTINE, Action.RESYNC):
            # A refused declaration: the portal and this device disagree about the hole.
            self._halt(
                Decision(Action.HALT, decision.detail, decision.seq, decision.reason or "gap")
            )
        return self._act(decision, [gap])

    def _find_gap(self, expected: int, first: int | None) -> dict[str, Any] | None:
        """The pending gap record whose hole bridges ``expected`` (and, when given,
        ends right before the record ``first``)."""
        after = expected - 1 if first is None else first - 1
        while True:
            page = self.store.pending(limit=_GAP_SCAN_PAGE, after_seq=after)
            for record in page:
                if record.get("type") != "gap":
                    continue
                gap = parse_gap_data(record)
                if isinstance(gap, str) or not gap.bridges(expected):
                    continue
                if first is None or gap.last_seq + 1 == first:
                    return record
            if len(page) < _GAP_SCAN_PAGE:
                return None
            after = page[-1]["seq"]

    def _quarantine(self, decision: Decision, batch: Sequence[dict[str, Any]]) -> int:
        """422 encoding/hash/signature: the valid prefix is acknowledged, the refused
        record goes to quarantine as evidence, an alarm and a gap record follow."""
        freed = self._acknowledge(decision.receipt)  # a verified receipt first, or nothing
        seq = decision.seq
        refused = next((r for r in batch if r["seq"] == seq), None)
        if refused is None or seq != self.store.last_ack[0] + 1:
            self._halt(
                Decision(
                    Action.HALT,
                    f"{decision.detail}: not the record after the receipt",
                    seq,
                    "mismatch",
                )
            )
        assert refused is not None and seq is not None
        found = self._local_failure(refused)
        if found is None:
            # The pinned portal refuses a record this device finds sound: keep it.
            self._halt(
                Decision(
                    Action.HALT, f"{decision.detail}; the record checks out here", seq, "disputed"
                )
            )
        assert found is not None
        try:
            self.store.quarantine_record(seq, decision.reason)
            self.store.declare_losses()
        except (QatysuError, ProtocolError, OSError) as exc:
            # Nothing was lost: the record stays pending.
            self._fail(f"record {seq} refused ({decision.reason}) but not quarantined: {exc}")
        self._alarm(
            f"record_refused_{decision.reason}",
            f"portal refused record {seq} ({decision.reason}): quarantined, gap declared",
            once=False,
        )
        logger.error("record %d refused (%s): quarantined and declared lost", seq, found)
        return freed

    def _local_failure(self, record: dict[str, Any]) -> str | None:
        """Why this device, too, finds ``record`` bad; None when it looks sound."""
        if self._device_key is not None:
            failure: Failure | None = ChainVerifier(self._device_key, self.device_id).check_content(
                record
            )
            return None if failure is None else f"{failure.reason}: {failure.detail}"
        problem = check_record_shape(record)
        if problem:
            return f"encoding: {problem}"
        try:
            _, digest = seal_digest(record, checked=True)
        except ProtocolError as exc:
            return f"encoding: {exc}"
        if digest != record["hash"]:
            return "hash: does not match the canonical bytes"
        if record.get("device") != self.device_id:
            return "device: another device id"
        # Without the device key a signature claim cannot be checked here; the
        # verified receipt that came with the answer stands for it.
        return "signature (not checked locally)"

    # --- halting, probing, alarms -----------------------------------------------------

    def _halt(self, decision: Decision) -> None:
        """Stop sending (keep everything), alarm once, and end the round."""
        if decision.receipt is not None:
            # The valid prefix may still be acted on, if its receipt checks out;
            # if it does not, the halt's own alarm says enough.
            self._try_acknowledge(decision.receipt)
        self.halted = decision.detail
        self._alarm(decision.alarm_kind, decision.detail)
        delay = self.policy.halted()
        logger.error("uploads stopped: %s (looking again in %.0f s)", decision.detail, delay)
        raise _RoundFailed(f"uploads stopped: {decision.detail}")

    def _probe(self) -> None:
        """While halted: resume only once the portal's cursor is a receipt this device trusts."""
        try:
            answer = self.client.cursor(self.device_id)
        except PortalUnreachable as exc:
            self.policy.halted()
            raise _RoundFailed(f"uploads stopped: {self.halted} (cursor: {exc})") from exc
        verdict = check_receipt(
            answer.receipt if answer.status == 200 else None,
            self.portal_key,
            self.device_id,
            self.store.knows,
            self.store.last_ack,
        )
        if verdict.receipt is None:
            self.policy.halted()
            raise _RoundFailed(f"uploads stopped: {self.halted}")
        logger.warning("portal cursor checks out again: resuming uploads (%s)", self.halted)
        self.halted = None

    def _alarm(self, kind: str, detail: str, *, once: bool = True) -> None:
        """Write an ``alarm`` record, once per kind until a good receipt arrives."""
        if once and kind in self._alarmed:
            return
        self._alarmed.add(kind)
        try:
            self.store.write("alarm", {"kind": kind, "detail": detail[:300]})
        except (QatysuError, ProtocolError, OSError) as exc:
            logger.error("cannot write alarm %s (%s): %s", kind, detail, exc)
            return
        self.alarms_written += 1
        logger.error("alarm %s: %s", kind, detail)

    def _exchange(self, send: Any) -> PortalAnswer:
        try:
            answer: PortalAnswer = send()
        except PortalUnreachable as exc:
            self._fail(str(exc))
        return answer

    def _fail(self, problem: str, retry_after_s: float | None = None) -> None:
        delay = self.policy.failed(retry_after_s)
        logger.warning("upload failed: %s (next try in %.1f s)", problem, delay)
        raise _RoundFailed(problem)
