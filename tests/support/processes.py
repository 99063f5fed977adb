"""Processes a test or benchmark started: the workers a server forked."""

from __future__ import annotations

from pathlib import Path

__all__ = ["child_pids"]


def child_pids(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry.name))
    return found
