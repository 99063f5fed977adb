"""The uploader's decisions, without I/O: batches, backoff, and what an answer means.

Nothing here sends, sleeps or reads a clock: callers pass answers in and get
:class:`Decision` values and delays out (a sans-I/O core). Receipt checks follow
docs/protocol.md: the pinned portal key signs it, and its ``record_hash`` is a hash the
device knows for that seq. Anything else is a failure that deletes nothing.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.backoff import Backoff
from agent.config import PortalConfig
from agent.exceptions import ReceiptError
from agent.protocol import verify_receipt
from agent.uplink.codec import PortalAnswer

__all__ = [
    "QUARANTINE_REASONS",
    "Action",
    "Backoff",
    "Decision",
    "UploadPolicy",
    "check_receipt",
    "classify",
    "contiguous_run",
    "parse_retry_after",
    "take_batch",
]

# 422 reasons that condemn one record the device itself made badly: it goes to
# quarantine and a gap record declares it. Every other reason means the portal
# and the device disagree about the chain (another device under this id, a
# rewritten history): stop and let a human look.
QUARANTINE_REASONS = frozenset({"encoding", "hash", "signature"})


class Action(enum.Enum):
    ACK = "ack"  # 200: act on the receipt, go on
    RESYNC = "resync"  # 409 (or 422 gap): act on the receipt if it checks, resend from there
    QUARANTINE = "quarantine"  # 422 encoding/hash/signature: quarantine, alarm, declare, go on
    HALT = "halt"  # 422 fork/link/device/..., 403, 404: stop sending, keep all, alarm
    SHRINK = "shrink"  # 413: smaller batches
    WAIT = "wait"  # 429/503: wait as told (Retry-After), then again
    RETRY = "retry"  # no answer, 5xx, 400, nonsense: back off


@dataclass(frozen=True)
class Decision:
    action: Action
    detail: str  # one line for logs and alarms
    seq: int | None = None  # the refused seq (422) or the expected seq (409)
    reason: str = ""  # the portal's 422 reason
    receipt: object = None  # unchecked; see check_receipt
    retry_after_s: float | None = None

    @property
    def alarm_kind(self) -> str:
        """The ``kind`` of the alarm record a HALT writes."""
        if self.reason:
            return f"upload_refused_{self.reason}"
        return "upload_halted"


def classify(answer: PortalAnswer, now_s: float = 0.0) -> Decision:
    """What the uploader does with a records (or gaps) answer.

    ``now_s`` (wall clock, Unix seconds) is only used for an HTTP-date Retry-After."""
    status, body = answer.status, answer.body or {}
    text = answer.describe()
    if status == 200:
        if answer.receipt is None:
            return Decision(Action.RETRY, f"{text}: no receipt in the answer")
        return Decision(Action.ACK, text, receipt=answer.receipt)
    if status == 409 and body.get("error") == "gap":
        expected = body.get("expected_seq")
        if type(expected) is not int:
            return Decision(Action.RETRY, f"{text}: 409 without an expected_seq")
        return Decision(Action.RESYNC, text, seq=expected, receipt=answer.receipt)
    if status == 422 and isinstance(body.get("reason"), str):
        reason, seq = body["reason"], body.get("seq")
        if type(seq) is not int:
            return Decision(Action.RETRY, f"{text}: 422 without a seq")
        if reason in QUARANTINE_REASONS:
            return Decision(Action.QUARANTINE, text, seq, reason, answer.receipt)
        if reason == "gap":  # a hole in the middle of a batch: the prefix is stored
            return Decision(Action.RESYNC, text, seq, reason, answer.receipt)
        return Decision(Action.HALT, text, seq, reason, answer.receipt)
    if status in (403, 404):
        return Decision(Action.HALT, text, reason="revoked" if status == 403 else "unknown_device")
    if status == 413:
        return Decision(Action.SHRINK, text)
    if status in (429, 503):
        return Decision(
            Action.WAIT, text, retry_after_s=parse_retry_after(answer.retry_after, now_s)
        )
    return Decision(Action.RETRY, text)


def parse_retry_after(value: str | None, now_s: float = 0.0) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_s)


# --- receipts ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptVerdict:
    receipt: dict[str, Any] | None  # set when the receipt may be acted on
    problem: str = ""  # one line when it may not
    kind: str = ""  # alarm kind: receipt_signature | receipt_unknown_hash | receipt_below_ack


def check_receipt(
    receipt: object,
    portal_key: Ed25519PublicKey,
    device_id: str,
    knows: Callable[[int, str], bool],
    last_ack: tuple[int, str],
) -> ReceiptVerdict:
    """docs/protocol.md. The store re-checks ``knows`` under its lock when acknowledging."""
    try:
        checked = verify_receipt(receipt, portal_key, device_id)
    except ReceiptError as exc:
        return ReceiptVerdict(None, f"receipt refused: {exc}", "receipt_signature")
    seq, record_hash = checked["seq"], checked["record_hash"]
    if seq < last_ack[0]:
        return ReceiptVerdict(
            None,
            f"receipt for seq {seq} is below the last acknowledged seq {last_ack[0]}",
            "receipt_below_ack",
        )
    if seq == 0 and last_ack[0] == 0:
        return ReceiptVerdict(checked)  # the portal holds nothing yet: covers nothing
    if not knows(seq, record_hash):
        return ReceiptVerdict(
            None,
            f"receipt for seq {seq} names hash {record_hash[:16]}..., unknown to this device",
            "receipt_unknown_hash",
        )
    return ReceiptVerdict(checked)


# --- batching ---------------------------------------------------------------------


def take_batch(sizes: Sequence[int], max_records: int, max_bytes: int) -> int:
    """How many of the next records go in one batch: at least one, then as many as fit."""
    total = 0
    for count, size in enumerate(sizes[:max_records]):
        total += size
        if count and total > max_bytes:
            return count
    return min(len(sizes), max_records)


def contiguous_run(seqs: Sequence[int], first: int) -> int:
    """How many leading ``seqs`` follow on from ``first`` without a hole."""
    for index, seq in enumerate(seqs):
        if seq != first + index:
            return index
    return len(seqs)


class UploadPolicy:
    """Batch limits, backoff state and the delay until the next round."""

    def __init__(
        self,
        batch_records: int = 500,
        batch_bytes: int = 1_000_000,
        *,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
        upload_delay_s: float = 0.2,
        upload_interval_s: float = 30.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if batch_records < 1 or batch_bytes < 1:
            raise ValueError("batch_records and batch_bytes must be at least 1")
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.backoff = Backoff(backoff_initial_s, backoff_max_s, rand)
        self.upload_delay_s = upload_delay_s
        self.upload_interval_s = upload_interval_s
        self.shrink = 1  # divisor after 413 answers
        self._delay: float | None = None  # set by the last failure

    @classmethod
    def from_config(
        cls, portal: PortalConfig, rand: Callable[[], float] = random.random
    ) -> UploadPolicy:
        return cls(
            portal.batch_records,
            portal.batch_bytes,
            backoff_initial_s=portal.backoff_initial_s,
            backoff_max_s=portal.backoff_max_s,
            upload_delay_s=portal.upload_delay_ms / 1000,
            upload_interval_s=portal.upload_interval_s,
            rand=rand,
        )

    @property
    def max_records(self) -> int:
        return max(1, self.batch_records // self.shrink)

    def batch_size(self, sizes: Sequence[int]) -> int:
        return take_batch(sizes, self.max_records, self.batch_bytes)

    def succeeded(self) -> None:
        self.backoff.success()
        self._delay = None

    def failed(self, retry_after_s: float | None = None) -> float:
        """A failed exchange: the delay before the next one (Retry-After wins, up to the cap)."""
        delay = self.backoff.failure()
        if retry_after_s is not None:
            delay = min(max(retry_after_s, 0.0), self.backoff.max_s)
        self._delay = delay
        return delay

    def halted(self) -> float:
        """Stopped sending: look again (one cursor request) only after the cap."""
        self._delay = self.backoff.max_s
        return self._delay

    def too_large(self) -> bool:
        """A 413: halve the batch; False once a single record is already too large."""
        if self.max_records == 1:
            return False
        self.shrink *= 2
        return True

    def current_delay_s(self) -> float:
        """The delay the last failure chose (0 when the last exchange succeeded)."""
        return self._delay or 0.0

    def next_delay_s(self, pending: int) -> float:
        """When the next round should run."""
        if self._delay is not None:
            return self._delay
        return self.upload_delay_s if pending else self.upload_interval_s
