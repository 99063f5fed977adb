"""What came back from one portal request, as plain data (no httpx types).

The client builds it; the sans-I/O policy reads it. ``body`` is the parsed JSON
object, or None when the answer was not a JSON object (a proxy's error page, a
body cut short).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PortalAnswer"]


@dataclass(frozen=True)
class PortalAnswer:
    status: int
    body: dict[str, Any] | None = None
    retry_after: str | None = None  # the raw Retry-After header, if any
    detail: str = ""  # one line for logs when the body says nothing useful
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def receipt(self) -> object:
        """The ``receipt`` member of the body, unchecked (None when absent)."""
        return None if self.body is None else self.body.get("receipt")

    def describe(self) -> str:
        """One line: status, portal error and detail."""
        if self.body is not None and isinstance(self.body.get("error"), str):
            text = f"HTTP {self.status} {self.body['error']}"
            reason = self.body.get("reason")
            if isinstance(reason, str):
                text += f" ({reason}"
                seq = self.body.get("seq")
                text += f" at seq {seq})" if isinstance(seq, int) else ")"
            detail = self.body.get("detail")
            if isinstance(detail, str) and detail:
                text += f": {detail}"
            return text
        return f"HTTP {self.status}" + (f": {self.detail}" if self.detail else "")
