"""The crash-safe local record buffer (TinyDB over append-only segment files).

See docs/buffer.md for the on-disk layout and recovery. Public names:
:class:`RecordBuffer`, :class:`LostRange`, :func:`read_status`,
:class:`BufferStatus`, and :class:`SegmentStorage` (the TinyDB storage).
"""

from __future__ import annotations

from agent.buffer.buffer import RecordBuffer
from agent.buffer.state import LostRange
from agent.buffer.status import BufferStatus, read_status
from agent.buffer.storage import SegmentStorage

__all__ = ["BufferStatus", "LostRange", "RecordBuffer", "SegmentStorage", "read_status"]
