"""Run a command with one folder on a read-only mount, as a failing SD card leaves it.

``chmod`` cannot make the failure: the tests may run as root, whom permissions do
not stop. A bind mount remounted read-only refuses everyone (EROFS), so the
command runs in its own mount namespace (``unshare -m -r``: a user namespace, no
real root needed) where ``folder`` is mounted read-only over itself; the rest of
the machine never sees that mount.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.tools import missing

__all__ = ["run_read_only"]

_SCRIPT = 'mount -o bind,ro "$1" "$1" && shift && exec "$@"'


def run_read_only(
    folder: Path, module: str, *args: str | Path, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` with ``folder`` read-only; skips (fails in CI) when
    this machine cannot make a private mount namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        missing("unshare (util-linux) is not installed: no read-only mount for the test")
    probe = subprocess.run(
        [str(unshare), "-m", "-r", "sh", "-c", _SCRIPT, "sh", str(folder), "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        missing(f"cannot mount read-only in a private namespace here: {probe.stderr.strip()}")
    command = [sys.executable, "-m", module, *(str(a) for a in args)]
    return subprocess.run(
        [str(unshare), "-m", "-r", "sh", "-c", _SCRIPT, "sh", str(folder), *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
    )
