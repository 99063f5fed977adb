"""CLI fixtures: the real ``qatysu`` entry point on a config in a temporary folder."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.config import AgentConfig, load_config
from portal.state import Portal
from tests.daemon.support import LivePortal


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@dataclass
class Site:
    """A device's files in a temporary folder: config, state dir, control socket path."""

    root: Path
    config: Path
    state_dir: Path
    socket: Path  # under a short folder: AF_UNIX paths are limited to 107 bytes

    def load(self) -> AgentConfig:
        return load_config(self.config)


Run = Callable[..., Result]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run("status", "--json")``: main() as the console script calls it."""

    def invoke(*args: str) -> Result:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return invoke


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="qcli", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_site(tmp_path: Path, short_dir: Path, run: Run, profile: str) -> Site:
    """A device initialised from ``profile``, its sockets moved under temporary folders."""
    config = tmp_path / "etc" / "agent.toml"
    state = tmp_path / "state"
    made = run("--config", config, "init", "--profile", profile, "--state-dir", state)
    assert made.code == 0, made.err
    s = Site(tmp_path, config, state, short_dir / "control.sock")
    changes: list[tuple[str, Path]] = [("device.control_socket", s.socket)]
    if profile == "demo-simulated":
        changes.append(("readers.0.socket", short_dir / "sim.sock"))
    for key, value in changes:
        made = run("--config", config, "config", "set", key, value)
        assert made.code == 0, made.err
    return s


@pytest.fixture
def site(tmp_path: Path, short_dir: Path, run: Run) -> Site:
    """A device initialised from the pi5-rc522 profile."""
    return make_site(tmp_path, short_dir, run, "pi5-rc522")


@pytest.fixture
def sim_site(tmp_path: Path, short_dir: Path, run: Run) -> Site:
    """A device initialised from the demo-simulated profile (no hardware at all)."""
    return make_site(tmp_path, short_dir, run, "demo-simulated")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LivePortal]:
    """The real portal under uvicorn on 127.0.0.1, center c1."""
    server = LivePortal(tmp_path / "portal")
    yield server
    server.close()


@pytest.fixture
def portal(live: LivePortal) -> Portal:
    return live.portal
