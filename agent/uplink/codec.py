"""The device API's bodies, without I/O: request bodies out, answers in.

:func:`encode_record` and :func:`gzip_batch` make the ``POST .../records`` body;
:func:`decode_answer` turns a status, raw body and headers into a
:class:`PortalAnswer`, plain data the sans-I/O policy reads (no httpx types).
``PortalAnswer.body`` is the parsed JSON object, or None when the answer was not
a JSON object (a proxy's error page, a body cut short); :func:`enrollment_problem`
checks an enrollment answer. docs/portal.md.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "GZIP_LEVEL",
    "PortalAnswer",
    "decode_answer",
    "encode_record",
    "enrollment_problem",
    "gzip_batch",
]

GZIP_LEVEL = 3  # half the CPU of level 5 or 6 for bodies 5 % larger (docs/uplink.md)


def encode_record(record: dict[str, Any]) -> bytes:
    """One record as compact JSON; the uploader sizes batches with these bytes."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def gzip_batch(parts: Sequence[bytes], level: int = GZIP_LEVEL) -> bytes:
    """The gzip body ``{"records": [...]}`` of ``POST .../records`` from encoded records."""
    packer = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: a gzip member
    out = [packer.compress(b'{"records":[')]
    for index, part in enumerate(parts):
        out.append(packer.compress(b"," + part if index else part))
    out.append(packer.compress(b"]}"))
    out.append(packer.flush())
    return b"".join(out)


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


def decode_answer(status: int, content: bytes, headers: Mapping[str, str]) -> PortalAnswer:
    """The answer to any device API request; any status, any body (``headers`` is
    looked up by lower-case name)."""
    body: dict[str, Any] | None = None
    detail = ""
    try:
        parsed = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        detail = f"answer is not JSON ({exc})"
    else:
        if isinstance(parsed, dict):
            body = parsed
        else:
            detail = "answer is not a JSON object"
    return PortalAnswer(
        status=status, body=body, retry_after=headers.get("retry-after"), detail=detail
    )


def enrollment_problem(answer: PortalAnswer) -> str:
    """Why ``POST /enroll``'s answer is not a usable enrollment; "" when it is
    (201 with ``device_id``, ``center_id`` and ``portal_public_key``)."""
    body = answer.body
    if answer.status != 201 or body is None:
        return f"enrollment refused: {answer.describe()}"
    for name in ("device_id", "center_id", "portal_public_key"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"enrollment answer lacks {name!r}"
    return ""
