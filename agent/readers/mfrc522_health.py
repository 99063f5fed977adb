"""MFRC522 supervision decisions, without I/O.

The shell reads VersionReg at start and every ``check_interval_s``, and
reports every exchange with the chip; :class:`ChipHealth` says when that adds
up to a fault and when to try recovering. A fault is VersionReg reading 0x00
or 0xFF (nobody answers on the bus: MISO floating or pulled), a VersionReg
different from the one seen at start (another chip, or a garbled bus), or
``max_errors`` chip-level errors in a row (the programmed timer never fired,
or the chip flagged a FIFO overflow, temperature or write error). Radio
trouble (collisions, CRC, parity and start-of-frame errors of a card at the
edge of the field) is not a chip fault and is not counted here.

Recovery attempts back off (:class:`~agent.backoff.Backoff`) from
``retry_initial_s`` to ``retry_max_s``; the back-off is kept across a
recovery that does not last ``stable_s``, so a flapping chip cannot flood the
chain with fault/recovered records. Pure: the shell passes the time.
"""

from __future__ import annotations

from agent.backoff import Backoff

__all__ = ["DEAD_VERSIONS", "KNOWN_VERSIONS", "ChipHealth", "describe_version"]

DEAD_VERSIONS = frozenset({0x00, 0xFF})
# Any other value (neither 0x00 nor 0xFF) is accepted: clones keep appearing.
KNOWN_VERSIONS = {
    0x90: "NXP MFRC522 v0.0",
    0x91: "NXP MFRC522 v1.0",
    0x92: "NXP MFRC522 v2.0",
    0x88: "clone, Fudan FM17522",
    0x12: "clone, counterfeit chip on cheap RC522 boards",
    0x15: "clone, reported on cheap RC522 boards",
    0x89: "clone, reported on cheap RC522 boards",
    0xB2: "clone, reported on cheap RC522 boards",
}


def describe_version(version: int) -> str:
    if version in DEAD_VERSIONS:
        return f"VersionReg 0x{version:02X} (no answer on the bus)"
    name = KNOWN_VERSIONS.get(version, "unknown chip, treated as working")
    return f"VersionReg 0x{version:02X} ({name})"


class ChipHealth:
    def __init__(
        self,
        *,
        check_interval_s: float = 30.0,
        max_errors: int = 3,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        stable_s: float = 600.0,
    ) -> None:
        self.check_interval_s = check_interval_s
        self.max_errors = max_errors
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.stable_s = stable_s
        self.baseline: int | None = None
        self.fault: str | None = None  # the detail of the fault in force
        self._errors = 0
        self._next_check = 0.0
        self._backoff = Backoff(retry_initial_s, retry_max_s)
        self._next_retry = 0.0
        self._recovered_at: float | None = None

    @property
    def faulted(self) -> bool:
        return self.fault is not None

    def version_due(self, now: float) -> bool:
        return self.fault is None and now >= self._next_check

    def on_version(self, version: int, now: float) -> str | None:
        """A periodic (or first) VersionReg read; returns a new fault's detail."""
        self._next_check = now + self.check_interval_s
        if version in DEAD_VERSIONS:
            return self._enter_fault(f"chip stopped answering: {describe_version(version)}", now)
        if self.baseline is None:
            self.baseline = version
        elif version != self.baseline:
            return self._enter_fault(
                f"VersionReg changed from 0x{self.baseline:02X} to 0x{version:02X}", now
            )
        return None

    def on_exchange(self, chip_ok: bool, now: float, detail: str = "") -> str | None:
        """One transceive; a run of ``max_errors`` chip errors returns a fault's detail."""
        if chip_ok:
            self._errors = 0
            return None
        self._errors += 1
        if self._errors >= self.max_errors and self.fault is None:
            return self._enter_fault(f"{self._errors} chip errors in a row: {detail}", now)
        return None

    def retry_due(self, now: float) -> bool:
        return self.fault is not None and now >= self._next_retry

    def on_retry_failed(self, now: float) -> None:
        self._next_retry = now + self._backoff.failure()

    def on_recovered(self, version: int, now: float) -> str:
        """The chip answers again with ``version``; returns the recovery's detail."""
        detail = f"re-initialised; {describe_version(version)}"
        if self.baseline is not None and version != self.baseline:
            detail += f", accepted in place of 0x{self.baseline:02X}"
        self.baseline = version
        self.fault = None
        self._errors = 0
        self._next_check = now + self.check_interval_s
        self._recovered_at = now
        return detail

    def fail(self, detail: str, now: float) -> str:
        """A fault the shell saw directly (the bus cannot be opened, a read raised)."""
        return self._enter_fault(detail, now)

    def _enter_fault(self, detail: str, now: float) -> str:
        if self._recovered_at is None or now - self._recovered_at >= self.stable_s:
            self._backoff.success()
            self._next_retry = now  # a first fault: try right away
        else:
            self._next_retry = now + self._backoff.failure()  # flapping: keep backing off
        self.fault = detail
        self._errors = 0
        return detail
