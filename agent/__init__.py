"""Qatysu agent: the device side of the attendance-verification system.

Importing :mod:`agent` pulls in nothing beyond the standard library, so
:mod:`agent.protocol` stays usable on machines without hardware libraries.
"""

from __future__ import annotations

__version__ = "0.1.0"
