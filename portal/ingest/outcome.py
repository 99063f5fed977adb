"""What an upload or a gap declaration is answered: HTTP status and JSON body."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.protocol import Failure

__all__ = ["IngestOutcome"]


@dataclass
class IngestOutcome:
    """What an ingest or gap declaration answers: HTTP status and JSON body."""

    status: int  # 200, 409 or 422
    receipt: dict[str, Any]
    accepted: int = 0
    duplicates: int = 0
    failure: Failure | None = None
    expected_seq: int | None = None
    stored_seqs: list[int] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        if self.status == 200:
            return {
                "receipt": self.receipt,
                "accepted": self.accepted,
                "duplicates": self.duplicates,
            }
        if self.status == 409:
            return {"error": "gap", "expected_seq": self.expected_seq, "receipt": self.receipt}
        assert self.failure is not None
        return {
            "error": "rejected",
            "seq": self.failure.seq,
            "reason": self.failure.reason,
            "detail": self.failure.detail,
            "receipt": self.receipt,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
        }
