"""What every benchmark shares: the command line, the machine, the report.

A benchmark builds its markdown section (tables with the baseline measured in
the same run, ratios, medians) and calls :func:`finish`, which writes
``docs/benchmarks/NAME.md`` (unless ``--no-write``) and prints the headline
figures as the last line, one JSON object. ``python -m bench.all`` runs them
all and assembles ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FRAGMENTS = ROOT / "docs" / "benchmarks"


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument(
        "--no-write", action="store_true", help="do not rewrite docs/benchmarks/NAME.md"
    )
    return parser.parse_args(argv)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def load_average() -> float:
    """The machine's 1-minute load average now."""
    return os.getloadavg()[0]


def load_note(loads: Sequence[float], own: str) -> str:
    """A sentence on how busy the machine was, from load averages sampled in the run.

    ``own`` says how many cores the benchmark itself keeps busy, so a reader can
    tell its own load from other work's.
    """
    cores = os.cpu_count() or 1
    low, high = min(loads), max(loads)
    return (
        f"The 1-minute load average sampled during the run went from {low:.1f} to "
        f"{high:.1f} on {cores} cores; the benchmark itself keeps {own} busy, and load "
        "well above that points to other work sharing the machine, which slows the "
        "absolute rates. Ratios against the baselines measured in the same run are the "
        "steadier figures."
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank; values need not be sorted."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def finish(
    name: str, title: str, body: str, headline: dict[str, Any], args: argparse.Namespace
) -> None:
    """Write the docs fragment and print the headline JSON as the last line."""
    if not args.no_write:
        FRAGMENTS.mkdir(parents=True, exist_ok=True)
        mode = "quick run (--quick)" if args.quick else "full run"
        text = (
            f"## {title}\n\n"
            f"Command: `python -m bench.{name}{' --quick' if args.quick else ''}` ({mode})  \n"
            f"Machine: {machine()}\n\n{body.strip()}\n\n"
            f"Headline: `{json.dumps(headline, sort_keys=True)}`\n"
        )
        (FRAGMENTS / f"{name}.md").write_text(text, encoding="utf-8")
    sys.stdout.flush()
    print(json.dumps(headline, sort_keys=True), flush=True)
