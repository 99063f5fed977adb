"""Qatysu portal: the city's receiving server (enrollment, verified ingest, reconciliation)."""

from __future__ import annotations

__version__ = "0.1.0"
