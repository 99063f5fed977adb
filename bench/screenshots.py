"""Screenshots of the main pages into docs/img/, in a real headless Chromium.

``python -m bench.screenshots [--out docs/img]`` serves the pages' test city
(tests/web/support.py) on 127.0.0.1, signs in as a person would and saves the
login, the audit overview, a center, a lesson timeline, the risk queue and the
devices page as PNG. Needs Debian's chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tests.reconcile.cdp import CHROMIUM, Browser
from tests.web.support import Site, serve_city

ROOT = Path(__file__).resolve().parents[1]
# Names as a city's clubs have them (the tests' city also has one full of markup).
SHOWN = {
    "C001": "Шахматный клуб «Алатау»",
    "C002": "Робототехника «Самұрық»",
    "C003": "Домбыра үйірмесі",
}


def _lesson(site: Site, browser: Browser) -> str:
    """The first lesson of the center page with a suspect row: a timeline worth a look."""
    browser.goto(f"{site.url}/audit/centers/C001?{site.period}&status=suspect")
    href = browser.js("document.querySelector('#lessons a.evidence')?.getAttribute('href')")
    if not isinstance(href, str):
        raise SystemExit("the test city has no suspect lesson at C001")
    return href


def shoot(out: Path, lang: str = "en") -> list[Path]:
    saved: list[Path] = []
    with (
        tempfile.TemporaryDirectory(prefix="qatysu-shots-") as tmp,
        serve_city(Path(tmp) / "data", names=SHOWN) as site,
    ):
        browser = Browser(lang=lang)
        try:

            def save(name: str, url: str, height: int = 820) -> None:
                browser.goto(site.url + url)
                full = browser.js("document.documentElement.scrollHeight")
                path = out / f"{name}.png"
                browser.screenshot(path, width=1280, height=min(max(height, 400), int(full)))
                saved.append(path)

            save("login", "/login", 420)
            browser.js(f"document.querySelector('input[name=token]').value = {site.operator!r}")
            browser.click("#login button[type=submit]")
            save("overview", f"/audit?{site.period}", 640)
            save("center", f"/audit/centers/C001?{site.period}", 900)
            save("lesson-timeline", _lesson(site, browser), 860)
            save("risk-queue", f"/audit/risk?{site.period}", 760)
            save("devices", "/audit/devices", 520)
        finally:
            browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--lang", default="en", choices=("en", "ru", "kk"))
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"screenshots: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 1
    shown = [
        str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p)
        for p in shoot(args.out, args.lang)
    ]
    for path in shown:
        print(path)
    # The last line, as every bench.NAME ends: what it made.
    print(json.dumps({"screenshots": len(shown), "files": shown}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
