"""The demo scenario, in real time on the real clock, with the real programs.

A portal on SQLite in a local folder, two centers, two ``qatysu run`` daemons
whose readers are the real ``rdm6300`` driver on pseudo-terminals that this
script feeds with EM4100 frames, and door sensors on gpiozero's MockFactory
(``GPIOZERO_PIN_FACTORY=mock``), moved through the daemon's ``mock-pin``
control command, which exists only when the pin factory is a mock one.

Nothing here overrides a clock or a reconciliation setting: lessons are scheduled
in the current hour, and the portal reconciles with its defaults, so what the demo
prints is what ``qatysu-portal serve`` on its folder shows (decision 0961).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from agent.control.client import ControlClient, daemon_running
from agent.readers.framing import em4100_frame
from demo.proxy import CuttableRelay

ZONE = ZoneInfo("Asia/Almaty")
LESSON_MIN = 9
BROWSE_PORT = 8080  # the port the printed `serve` command uses (the portal's default)
COOKIE_ENV = "QATYSU_PORTAL_COOKIE_SECURE"
SUN_CENTER = "C001"  # the synthetic history's first center, issued SUN cards
DOOR_WINDOW_S = 60  # docs/reconciliation.md: a door open within 60 s of a read


def say(text: str = "") -> None:
    print(text, flush=True)


@dataclass
class Child:
    child_id: str
    name: str
    uid: str  # EM4100: 5 bytes, 10 hex characters


@dataclass
class Club:
    center_id: str
    name: str
    group_id: str
    price_kzt: int
    children: list[Child]
    state_dir: Path
    relay: CuttableRelay | None = None
    master_fd: int = -1
    slave_fd: int = -1
    process: subprocess.Popen[bytes] | None = None
    confirmed: list[str] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.state_dir / "agent.toml"

    @property
    def control(self) -> ControlClient:
        return ControlClient(self.socket, timeout_s=30)

    @property
    def socket(self) -> Path:
        return self.state_dir / "control.sock"


@dataclass
class Options:
    data_dir: Path
    children_per_club: int = 6
    offline_s: float = 20.0
    history_centers: int = 5
    history_days: int = 30
    seed: int = 7
    keep_running: bool = False


class Demo:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.data = options.data_dir.resolve()
        self.portal_dir = self.data / "portal"
        self.port = _free_port()
        self.portal: subprocess.Popen[bytes] | None = None
        self.clubs: list[Club] = []
        self.env = dict(os.environ)
        # Every reconciliation setting at its default: the pages show what is printed.
        for name in [k for k in self.env if k.startswith("QATYSU_PORTAL_")]:
            del self.env[name]
        self.env.pop("QATYSU_PORTAL_DB", None)
        # The demo serves plain http on 127.0.0.1: a Secure session cookie would not come back.
        self.env[COOKIE_ENV] = "0"
        self.auditor_token = ""
        self.doors_closed_at = 0.0

    # -- running programs ----------------------------------------------------------

    def portal_cli(self, *args: str) -> str:
        """Run ``qatysu-portal`` on the demo's folder."""
        cmd = [sys.executable, "-m", "portal", "--data-dir", str(self.portal_dir), *args]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[2:])} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def agent_cli(self, club: Club, *args: str, env: dict[str, str] | None = None) -> str:
        cmd = [sys.executable, "-m", "agent", "--config", str(club.config), *args]
        done = subprocess.run(cmd, env=env or self.env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"qatysu {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    # -- the story -----------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            self.set_up_portal()
            self.set_up_clubs()
            lesson = self.schedule_lessons()
            self.start_agents()
            self.honest_arrivals_with_outage()
            self.card_stack_at_the_fraud_club()
            self.wait_until_uploaded()
            self.stop_agents()
            self.stop_portal()
            history = self.load_history()
            self.import_csv(lesson)
            summary = self.reconcile(lesson["date"], history)
        finally:
            self.stop_agents()
            self.stop_portal()
            for club in self.clubs:
                if club.relay:
                    club.relay.close()
                for fd in (club.master_fd, club.slave_fd):
                    if fd >= 0:
                        os.close(fd)
        summary["demo_seconds"] = round(time.monotonic() - started, 1)
        return summary

    def set_up_portal(self) -> None:
        say(f"== 1. The city's portal (SQLite in {self.portal_dir})")
        if self.data.exists():
            shutil.rmtree(self.data)
        self.data.mkdir(parents=True)
        self.clubs = [
            self._club("alatau", "Шахматный клуб «Алатау»", "alatau-chess", 1500),
            self._club("nur", "Robotics club «Nur»", "nur-robotics", 2500),
        ]
        for club in self.clubs:
            self.portal_cli("center", "add", club.center_id, "--name", club.name)
        self.auditor_token = self.portal_cli(
            "admin-token", "create", "--name", "demo auditor", "--role", "auditor"
        ).split()[-1]
        self.portal = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portal",
                "--data-dir",
                str(self.portal_dir),
                "serve",
                "--port",
                str(self.port),
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.data / "portal.log", "wb"),  # noqa: SIM115 - lives with the process
        )
        _wait_for(lambda: _healthy(self.port), 30, "the portal did not start")
        say(
            f"   portal on http://127.0.0.1:{self.port}, centers: "
            + ", ".join(c.center_id for c in self.clubs)
        )

    def _club(self, center_id: str, name: str, group_id: str, price: int) -> Club:
        children = [
            Child(f"{center_id}-c{n:02d}", _name(self.rng), _em4100_uid(self.rng))
            for n in range(1, self.o.children_per_club + (3 if center_id == "nur" else 1))
        ]
        return Club(center_id, name, group_id, price, children, self.data / f"agent-{center_id}")

    def set_up_clubs(self) -> None:
        say("== 2. A technician installs a Pi at each club door (qatysu init, enroll)")
        for club in self.clubs:
            club.master_fd, club.slave_fd = os.openpty()
            tty = os.ttyname(club.slave_fd)
            club.state_dir.mkdir(parents=True)
            self.agent_cli(
                club, "init", "--profile", "pi-rdm6300-uart", "--state-dir", str(club.state_dir)
            )
            self.agent_cli(club, "config", "set", "readers.0.port", tty)
            socket_path = str(club.state_dir / "control.sock")
            self.agent_cli(club, "config", "set", "device.control_socket", socket_path)
            self.agent_cli(club, "config", "set", "heartbeat.interval_s", "10")
            club.relay = CuttableRelay(("127.0.0.1", self.port))
            token = self.portal_cli("enroll-token", "create", "--center", club.center_id).split()[
                -1
            ]
            self.agent_cli(
                club,
                "enroll",
                "--portal",
                f"http://127.0.0.1:{club.relay.port}",
                "--token",
                token,
                "--insecure",
            )
            say(f"   {club.center_id}: RDM6300 reader on {tty}, door on mock GPIO 17, enrolled")

    def schedule_lessons(self) -> dict[str, Any]:
        # A lesson that began a minute ago and lasts 9 minutes. Its window opens 30 min
        # before (the portal's margin), when the devices did not exist yet: the portal
        # calls that stretch offline, so a confirmation without a tap is unverifiable,
        # not at risk (what a city sees in an installation week, too).
        now = datetime.now(ZONE)
        start = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
        end = start + timedelta(minutes=LESSON_MIN)
        if end.date() != now.date():
            say(
                "   (it is nearly midnight in Almaty: the lesson ends at 23:59, and the "
                "report may call part of its window offline)"
            )
            end = now.replace(hour=23, minute=59, second=0, microsecond=0)
        say(
            f"== 3. Today's lessons: {start:%H:%M}-{end:%H:%M} Asia/Almaty; the portal "
            "looks at the 30 min before each lesson too, before these devices existed"
        )
        return {"date": now.date(), "start": start, "end": end}

    def start_agents(self) -> None:
        say("== 4. The agents start (qatysu run; GPIOZERO_PIN_FACTORY=mock for the doors)")
        env = dict(self.env, GPIOZERO_PIN_FACTORY="mock")
        for club in self.clubs:
            club.process = subprocess.Popen(
                [sys.executable, "-m", "agent", "--config", str(club.config), "run"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(club.state_dir / "agent.log", "wb"),  # noqa: SIM115
            )
        for club in self.clubs:
            _wait_for(
                lambda c=club: daemon_running(c.socket), 30, f"agent {club.center_id} did not start"
            )
            # The enclosure is shut and the door closed before children come.
            self.pin(club, 27, False)
            self.pin(club, 17, False)
        self.doors_closed_at = time.monotonic()

    def pin(self, club: Club, pin: int, level: bool) -> None:
        club.control.request("mock-pin", pin=pin, level=level)

    def tap(self, club: Club, child: Child, *, hold_s: float = 0.3) -> None:
        """A card held to the RDM6300: it repeats the frame while the card is there."""
        frame = em4100_frame(child.uid)
        until = time.monotonic() + hold_s
        while time.monotonic() < until:
            os.write(club.master_fd, frame)
            time.sleep(0.06)

    def honest_arrivals_with_outage(self) -> None:
        club = self.clubs[0]
        say(f"== 5. {club.center_id}: children arrive in groups; the door opens for each group")
        kids = list(club.children)
        self.rng.shuffle(kids)
        groups = [kids[: len(kids) // 2], kids[len(kids) // 2 :]]
        for index, group in enumerate(groups):
            if index == 1:
                assert club.relay is not None
                club.relay.cut()
                say(
                    f"   {club.center_id}: the club's network goes down "
                    f"for {self.o.offline_s:.0f} s (the taps wait at the device; the "
                    "receipts before and after the outage are under 15 min apart, so "
                    "their times stay proven: an outage longer than that would leave "
                    "the rows present_unproven, unverifiable but not accused)"
                )
                outage_started = time.monotonic()
            self.pin(club, 17, True)
            time.sleep(0.5)
            for child in group:
                self.tap(club, child)
                time.sleep(self.rng.uniform(0.8, 2.5))
            self.pin(club, 17, False)
            status = club.control.request("status")
            say(f"   {len(group)} taps; pending at the device: {status['pending']}")
            time.sleep(1.0)
        remaining = self.o.offline_s - (time.monotonic() - outage_started)
        if remaining > 0:
            time.sleep(remaining)
        assert club.relay is not None
        club.relay.restore()
        say(f"   {club.center_id}: network back; the agent catches up on its own")
        club.confirmed = [c.child_id for c in club.children[:-1]]  # one parent forgot

    def card_stack_at_the_fraud_club(self) -> None:
        club = self.clubs[1]
        say(f"== 6. {club.center_id}: a manager taps a stack of collected cards, door shut")
        stack = club.children[: self.o.children_per_club]
        # The door was open at start-up; the rule looks 60 s either side of a read.
        wait = DOOR_WINDOW_S + 5 - (time.monotonic() - self.doors_closed_at)
        if wait > 0:
            say(
                f"   (the door has been shut since the agent started; {wait:.0f} s more "
                "so that its start-up state is out of the rule's 60 s window)"
            )
            time.sleep(wait)
        for child in stack:
            self.tap(club, child, hold_s=0.2)
            time.sleep(self.rng.uniform(0.3, 0.7))
        club.confirmed = [c.child_id for c in club.children]  # everyone "attended"
        say(
            f"   {len(stack)} cards tapped in a burst; {len(club.children)} lessons will be "
            "confirmed in the timesheet, two of them for children who never came (no "
            "device watched this club's half hour before the lesson: those two will be "
            "unverifiable, not at risk)"
        )

    def wait_until_uploaded(self) -> None:
        say("== 7. Waiting for every record to reach the portal")

        def drained() -> bool:
            return all(c.control.request("status")["pending"] == 0 for c in self.clubs)

        _wait_for(drained, 90, "records did not reach the portal")
        for club in self.clubs:
            status = club.control.request("status")
            say(f"   {club.center_id}: head seq {status['head_seq']}, pending 0")

    def stop_agents(self) -> None:
        for club in self.clubs:
            if club.process is not None and club.process.poll() is None:
                club.process.send_signal(signal.SIGTERM)
                try:
                    club.process.wait(10)
                except subprocess.TimeoutExpired:
                    club.process.kill()
                    club.process.wait()
            club.process = None

    def stop_portal(self) -> None:
        if self.portal is not None and self.portal.poll() is None:
            self.portal.send_signal(signal.SIGTERM)
            try:
                self.portal.wait(10)
            except subprocess.TimeoutExpired:
                self.portal.kill()
                self.portal.wait()
        self.portal = None

    def load_history(self) -> dict[str, Any]:
        """A month of a synthetic city, signed with device keys, through the real ingest."""
        if self.o.history_centers <= 0:
            return {"centers": 0, "records": 0}
        say(
            f"== 8. A month of history for {self.o.history_centers} more centers "
            "(synthetic city, real signatures, the portal's own ingest)"
        )
        first = datetime.now(ZONE).date() - timedelta(days=self.o.history_days)
        line = self.portal_cli(
            "generate-city",
            "--centers",
            str(self.o.history_centers),
            "--days",
            str(self.o.history_days),
            "--from",
            first.isoformat(),
            "--seed",
            str(self.o.seed),
            "--sun-centers",
            "1",
        )
        say(f"   {line}")
        say(
            f"   {SUN_CENTER} issued NTAG 424 DNA cards (SUN): every read carries the card's "
            "own encrypted counter and MAC, checked by the portal with keys the club never has"
        )
        last = first + timedelta(days=self.o.history_days - 1)
        return {
            "centers": self.o.history_centers,
            "first": first.isoformat(),
            "last": last.isoformat(),
        }

    def import_csv(self, lesson: dict[str, Any]) -> None:
        say("== 9. The city imports the roster, schedule and the parents' confirmations")
        day: date = lesson["date"]
        roster = [("child_id", "badge_uid", "center_id", "group_id", "child_name")]
        schedule = [("group_id", "center_id", "weekday", "start", "end", "price_kzt")]
        confirmations = [("child_id", "group_id", "date", "confirmed_at", "signer")]
        for club in self.clubs:
            schedule.append(
                (
                    club.group_id,
                    club.center_id,
                    str(day.isoweekday()),
                    f"{lesson['start']:%H:%M}",
                    f"{lesson['end']:%H:%M}",
                    str(club.price_kzt),
                )
            )
            for child in club.children:
                # Technicians copy UIDs with separators; the import normalises them.
                pretty = ":".join(child.uid[i : i + 2] for i in range(0, 10, 2)).lower()
                roster.append((child.child_id, pretty, club.center_id, club.group_id, child.name))
            # Parents sign after the lesson ends (a confirmation before it is
            # confirmed_early); the demo's lesson may still be running, so it stamps
            # the minute after the end.
            signed = max(datetime.now(ZONE), lesson["end"] + timedelta(minutes=1))
            for child_id in club.confirmed:
                confirmations.append(
                    (
                        child_id,
                        club.group_id,
                        day.isoformat(),
                        signed.isoformat(timespec="seconds"),
                        "EDS parent of " + child_id,
                    )
                )
        # The schedule names the groups the roster and confirmations refer to.
        for kind, rows in (
            ("schedule", schedule),
            ("roster", roster),
            ("confirmations", confirmations),
        ):
            path = self.data / f"demo-{kind}.csv"
            _write_csv(path, rows)
            self.portal_cli("import", kind, str(path))
        say(
            "   imported demo-schedule.csv, demo-roster.csv, demo-confirmations.csv "
            "(`;` delimited, as Excel writes them in a Russian locale)"
        )

    def reconcile(self, day: date, history: dict[str, Any]) -> dict[str, Any]:
        say("== 10. Reconciliation for today")
        today = ["--from", day.isoformat(), "--to", day.isoformat()]
        say(self.portal_cli("reconcile", *today, "--format", "table"))
        report = json.loads(self.portal_cli("reconcile", *today, "--format", "json"))
        html = self.data / "report-today.html"
        self.portal_cli("reconcile", *today, "--format", "html", "--output", str(html))
        summary: dict[str, Any] = {"today": _summarise(report["rows"])}
        summary["today"]["totals"] = report["totals"]["all"]
        # One period for the whole story, history and today: the figures printed are
        # the totals of exactly the view the printed URL opens (decision 0961).
        first = history.get("first") or day.isoformat()
        whole = ["--from", first, "--to", day.isoformat()]
        period = json.loads(self.portal_cli("reconcile", *whole, "--format", "json"))
        summary["month"] = _summarise(period["rows"])
        summary["sun"] = _card_checks(period["rows"], SUN_CENTER)
        summary["period"] = {"from": first, "to": day.isoformat(), "totals": period["totals"]}
        say(
            f"== 11. The whole period {first} .. {day} ({history.get('centers', 0)} synthetic "
            f"centers' history and today's two clubs), every center"
        )
        _print_totals(period["totals"])
        sun = summary["sun"]
        if sun["reads"]:
            checks = ", ".join(f"{n} {check}" for check, n in sorted(sun["checks"].items()))
            say(
                f"   {SUN_CENTER}'s SUN cards: {sun['reads']} reads checked by the card "
                f"({checks}); {sun['verified_rows']} of its rows verified"
            )
        say(f"== Today, {day}, at the two clubs")
        clubs = [c.center_id for c in self.clubs]
        _print_totals(report["totals"], only=clubs)
        xlsx = self.data / "report.xlsx"
        self.portal_cli("reconcile", *whole, "--format", "xlsx", "--output", str(xlsx))
        say()
        say(f"Reports written: {html} (today), {xlsx} (the whole period, for Excel)")
        base = f"http://127.0.0.1:{BROWSE_PORT}"
        summary["browse"] = {
            "command": [
                f"{COOKIE_ENV}=0",
                ".venv/bin/qatysu-portal",
                "--data-dir",
                str(self.portal_dir),
                "serve",
                "--port",
                str(BROWSE_PORT),
            ],
            "url": f"{base}/audit?from={first}&to={day}",
            "today_urls": {c: f"{base}/audit/centers/{c}?from={day}&to={day}" for c in clubs},
            "token": self.auditor_token,
        }
        browse = summary["browse"]
        say("Browse the same figures in the auditor pages (the demo leaves nothing running):")
        say(f"   {' '.join(browse['command'])}")
        say(f"   open {browse['url']}")
        for center, url in browse["today_urls"].items():
            say(f"   today at {center}: {url}")
        say(f"   and log in with the auditor token {self.auditor_token}")
        summary["rows"] = report["rows"]
        return summary


def _card_checks(rows: Sequence[dict[str, Any]], center: str) -> dict[str, Any]:
    """What the SUN cards of ``center`` proved: each read's card check, and verified rows."""
    checks: dict[str, int] = {}
    verified = 0
    for row in rows:
        if row["center_id"] != center:
            continue
        verified += row["status"] == "verified"
        for record in row["evidence"].get("records", []):
            card = record.get("card")
            if card:
                checks[card["check"]] = checks.get(card["check"], 0) + 1
    return {"reads": sum(checks.values()), "checks": checks, "verified_rows": verified}


def _summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    at_risk = unverifiable = 0
    by_center: dict[str, dict[str, int]] = {}
    reasons: dict[str, set[str]] = {}
    for row in rows:
        status = row["status"]
        by_status[status] = by_status.get(status, 0) + 1
        center = by_center.setdefault(row["center_id"], {})
        center[status] = center.get(status, 0) + 1
        reasons.setdefault(row["center_id"], set()).update(row.get("reasons") or ())
        price = int(row.get("price_kzt") or 0)
        if status in ("confirmed_without_presence", "suspect"):
            at_risk += price
        elif status in ("confirmed_device_offline", "present_unproven"):
            unverifiable += price
    return {
        "by_status": by_status,
        "by_center": by_center,
        "kzt_at_risk": at_risk,
        "kzt_unverifiable": unverifiable,
        "reasons_by_center": {c: sorted(r) for c, r in reasons.items()},
    }


def _print_totals(t: dict[str, Any], only: Sequence[str] = ()) -> None:
    """The totals as the centers page shows them: every center (or ``only`` these, as
    their own pages do), then all of them."""
    for c in t["centers"]:
        if only and c["center_id"] not in only:
            continue
        share = "—" if c["share_verified"] is None else f"{c['share_verified']:.1%}"
        say(
            f"   {c['center_id']:10} verified {share:>6}; KZT at risk {c['kzt_at_risk']:>10,}; "
            f"unverifiable {c['kzt_unverifiable']:>10,}"
        )
    everything = t["all"]
    if only:  # the two clubs' own figures (other centers had no lesson rows)
        chosen = [c for c in t["centers"] if c["center_id"] in only]
        everything = {
            "lessons": {s: sum(c["lessons"][s] for c in chosen) for s in t["all"]["lessons"]},
            "kzt_at_risk": sum(c["kzt_at_risk"] for c in chosen),
            "kzt_unverifiable": sum(c["kzt_unverifiable"] for c in chosen),
        }
    _print_summary({"by_status": everything["lessons"], **everything})


def _print_summary(summary: dict[str, Any]) -> None:
    for status in (
        "verified",
        "suspect",
        "confirmed_without_presence",
        "confirmed_device_offline",
        "present_unproven",
        "present_not_confirmed",
    ):
        say(f"   {status:28} {summary['by_status'].get(status, 0):6}")
    say(
        f"   KZT at risk: {summary['kzt_at_risk']:,}; unverifiable: {summary['kzt_unverifiable']:,}"
    )


def _write_csv(path: Path, rows: Sequence[Sequence[str]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8-sig")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_for(check: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # a program still starting answers badly
            pass
        time.sleep(0.2)
    raise RuntimeError(f"demo: {message} within {timeout:.0f} s")


_FIRST = [
    "Айдана",
    "Нурлан",
    "Алихан",
    "Томирис",
    "Дамир",
    "Амина",
    "Ерасыл",
    "Камила",
    "Arman",
    "Sofia",
    "Timur",
    "Aruzhan",
]
_LAST = ["Ахметов", "Серикова", "Жумабек", "Ким", "Иванова", "Бекова", "Omarov", "Nurpeis"]


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _em4100_uid(rng: random.Random) -> str:
    return "".join(f"{rng.randrange(256):02X}" for _ in range(5))
