"""Station fixtures: the real portal under uvicorn, the ``qatysu`` entry point, a card reader
over the emulated NTAG 424 DNA (tests/hardware/ntag424_emu.py)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.config import AgentConfig
from agent.protocol.card_keys import CardKeyBundle
from agent.station import channels
from portal.cards.keys import derived_bundle
from portal.cards.registry import create_grant
from portal.keys import load_or_create_card_master
from portal.state import Portal
from tests.hardware.ntag424_emu import EmulatedChannel, Ntag424App
from tests.portal.conftest import client, live, portal, settings
from tests.portal.support import LiveServer

__all__ = ["client", "live", "portal", "settings"]

URL = "https://qatysu.kz/c"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Desk:
    """The office: a station state dir, the card on its reader, and the portal."""

    state_dir: Path
    portal: Portal
    live: LiveServer
    run: Callable[..., Result]
    card: Ntag424App = field(default_factory=Ntag424App)

    def station(self, *args: str) -> Result:
        return self.run("station", "--state-dir", str(self.state_dir), *args)

    def grant(self, count: int = 100) -> str:
        return create_grant(self.portal.engine, count, 3_600_000, URL, now=self.portal.clock())

    def enroll(self, count: int = 100) -> Result:
        done = self.station(
            "enroll", "--portal", self.live.url, "--grant", self.grant(count), "--insecure"
        )
        assert done.code == 0, done.err
        return done

    def bundle(self, uid: bytes) -> CardKeyBundle:
        """The keys the portal gives card ``uid`` (derived from its card master key)."""
        master = load_or_create_card_master(self.portal.settings.data_dir)
        return derived_bundle(master, uid, URL)

    def personalise(self) -> Result:
        return self.station("personalise", "--reader", "emulated", "--json")


@pytest.fixture
def desk(
    tmp_path: Path,
    portal: Portal,
    live: LiveServer,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Desk]:
    def run(*args: str) -> Result:
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    made = Desk(tmp_path / "station", portal, live, run)

    @contextlib.contextmanager
    def reader(timeout_s: float, config: AgentConfig | None) -> Iterator[EmulatedChannel]:
        yield EmulatedChannel(made.card)  # the card as it is now: cut, finished, foreign

    channels.register_reader("emulated", reader)
    try:
        yield made
    finally:
        channels.unregister_reader("emulated")
