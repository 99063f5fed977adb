"""``make demo``: the whole system on this machine, no hardware, in about two minutes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from demo.scenario import Demo, Options


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("demo-data"),
        help="the demo's folder (replaced on each run)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shorter outage and a smaller history (used by the tests)",
    )
    parser.add_argument("--json", action="store_true", help="end with a JSON summary line")
    args = parser.parse_args()
    options = Options(data_dir=args.data_dir)
    if args.quick:
        options.offline_s, options.history_centers, options.history_days = 6.0, 2, 7
    summary = Demo(options).run()
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, ensure_ascii=False))
    print(f"demo finished in {summary['demo_seconds']} s; nothing left running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
