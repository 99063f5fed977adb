"""The demo's scenario, shortened: the real programs find the fraud and clear the honest club."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    data = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-m", "demo", "--quick", "--json", "--data-dir", str(data)],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("QATYSU_")},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    summary: dict[str, object] = json.loads(lines[-1])
    summary["data_dir"] = str(data)
    summary["stdout"] = done.stdout
    return summary


def test_fraud_at_nur_is_found(demo_run: dict[str, object]) -> None:
    today = demo_run["today"]
    assert isinstance(today, dict)
    nur = today["by_center"]["nur"]
    # Six collected cards tapped in a burst behind a shut door: at risk. Two more
    # confirmed without a tap: the 30 min before the lesson predate the device, so
    # the portal cannot say it was watching (unverifiable, not accused).
    assert nur.get("suspect") == 6, nur
    assert nur.get("confirmed_device_offline") == 2, nur
    assert nur.get("verified", 0) == 0, nur
    assert {"card_burst", "no_door_passage"} <= set(today["reasons_by_center"]["nur"])
    assert today["kzt_at_risk"] == 6 * 2500
    assert today["kzt_unverifiable"] == 2 * 2500


def test_honest_alatau_is_clean(demo_run: dict[str, object]) -> None:
    today = demo_run["today"]
    assert isinstance(today, dict)
    alatau = today["by_center"]["alatau"]
    # Every confirmed child tapped behind an open door, some during a network outage.
    assert alatau.get("verified") == 5, alatau
    assert alatau.get("present_not_confirmed") == 1, alatau  # one parent forgot
    assert set(alatau) == {"verified", "present_not_confirmed"}, alatau
    assert today["reasons_by_center"].get("alatau", []) == []


def test_history_reconciled_and_nothing_left_running(demo_run: dict[str, object]) -> None:
    month = demo_run["month"]
    assert isinstance(month, dict)
    # Reconciled with the default margin: most generated lessons are honest.
    verified = month["by_status"].get("verified", 0)
    assert verified > 4 * month["by_status"].get("confirmed_without_presence", 0), month
    assert month["kzt_at_risk"] > 0  # the generator injects fraud
    data = Path(str(demo_run["data_dir"]))
    assert (data / "report-today.html").stat().st_size > 0
    # The daemons and the portal are gone: their sockets and ports are closed.
    assert not list(data.glob("agent-*/control.sock"))
    assert not _processes_mentioning(str(data))


def test_the_sun_club_s_reads_are_proven_by_its_cards(demo_run: dict[str, object]) -> None:
    sun = demo_run["sun"]
    assert isinstance(sun, dict)
    # Every read at the SUN club carries a message its card made, checked with the
    # portal's keys; the few replayed are backdated fabrications' collateral.
    assert sun["reads"] > 0 and sun["verified_rows"] > 0, sun
    assert sun["checks"].get("proven", 0) >= 0.9 * sun["reads"], sun
    assert "not_authenticated" not in sun["checks"], sun
    assert "SUN cards:" in str(demo_run["stdout"])


def test_the_printed_url_and_token_show_the_printed_figures(demo_run: dict[str, object]) -> None:
    """The end of the demo: the command, URL and token it prints open its own figures."""
    out = str(demo_run["stdout"])
    url = re.findall(r"^   open (http://\S+)$", out, re.M)[-1]
    token = re.findall(r"log in with the auditor token (\S+)$", out, re.M)[-1]
    command = re.findall(
        r"^   (QATYSU_PORTAL_COOKIE_SECURE=0 \S+qatysu-portal .*serve.*)$", out, re.M
    )
    assert command, out[-2000:]
    # The figures printed for the whole period (step 11), as a person reads them.
    story = out[out.index("== 11.") : out.index("== Today,")]
    figures = re.search(r"KZT at risk: ([\d,]+); unverifiable: ([\d,]+)", story)
    assert figures, story
    at_risk, unverifiable = (int(x.replace(",", "")) for x in figures.groups())
    printed_centers = set(re.findall(r"^   (\S+) +verified", story, re.M))
    period = parse_qs(urlsplit(url).query)
    browse = demo_run["browse"]
    assert isinstance(browse, dict) and browse["url"] == url and browse["token"] == token
    # Serve as printed (on a free port: 8080 may be taken on a shared machine).
    port = _free_port()
    args = command[0].split()[1:]
    args[args.index("--port") + 1] = str(port)
    assert args[0].endswith("/qatysu-portal")
    args[0:1] = [sys.executable, "-m", "portal"]  # the same program, from this venv
    env = {k: v for k, v in os.environ.items() if not k.startswith("QATYSU_")}
    env["QATYSU_PORTAL_COOKIE_SECURE"] = "0"
    server = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, server)
        with httpx.Client(base_url=base, timeout=120) as http:
            api = http.get(
                "/api/v1/reports/reconciliation",
                params={"from": period["from"][0], "to": period["to"][0]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert api.status_code == 200, api.text[:300]
            totals = api.json()["totals"]
            assert (totals["all"]["kzt_at_risk"], totals["all"]["kzt_unverifiable"]) == (
                at_risk,
                unverifiable,
            )
            assert {c["center_id"] for c in totals["centers"]} == printed_centers
            assert {"alatau", "nur"} < printed_centers  # and the synthetic ones, with figures
            assert all(sum(c["lessons"].values()) > 0 for c in totals["centers"]), totals
            period_doc = demo_run["period"]
            assert isinstance(period_doc, dict) and period_doc["totals"] == totals
            # The page itself, logged in with the token as a person would.
            login = http.post("/login", data={"token": token, "next": "/audit"})
            assert login.status_code in (200, 303)
            page = http.get(urlsplit(url)._replace(scheme="", netloc="").geturl())
            assert page.status_code == 200
            shown = re.search(r'id="kzt-at-risk">([^<]+)<', page.text)
            assert shown and int(re.sub(r"\D", "", shown.group(1))) == at_risk
            for center in printed_centers:
                assert center in page.text
            # Today's figures at each club, on the club's own page as printed.
            today = out[out.index("== Today,") : out.index("Reports written")]
            for center, club_url in re.findall(r"^   today at (\S+): (\S+)$", out, re.M):
                line = re.search(
                    rf"^   {center} +verified +\S+; KZT at risk +([\d,]+); "
                    rf"unverifiable +([\d,]+)$",
                    today,
                    re.M,
                )
                assert line, today
                query = parse_qs(urlsplit(club_url).query)
                one = http.get(
                    "/api/v1/reports/reconciliation",
                    params={"from": query["from"][0], "to": query["to"][0], "center": center},
                    headers={"Authorization": f"Bearer {token}"},
                ).json()["totals"]["all"]
                printed = tuple(int(x.replace(",", "")) for x in line.groups())
                assert (one["kzt_at_risk"], one["kzt_unverifiable"]) == printed, center
                club_page = http.get(urlsplit(club_url)._replace(scheme="", netloc="").geturl())
                assert club_page.status_code == 200 and center in club_page.text
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        try:
            if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("the portal did not start as printed")


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile
        if any(text in arg for arg in args):
            found.append(" ".join(args))
    return found
