from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.exceptions import ConfigError


def test_loads_sections_and_lists(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[device]\nstate_dir = "/tmp/q"\n[[readers]]\nname = "entrance"\n'
        'driver = "rdm6300"\nport = "loop://"\n[[doors]]\nname = "main"\npin = 17\n'
    )
    config = load_config(path)
    assert config.device.state_dir == Path("/tmp/q")
    assert config.readers[0].port == "loop://" and config.doors[0].pin == 17


def test_unknown_key_names_file_key_and_nearest(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[[readers]]\nname = "a"\ndrivr = "rdm6300"\n')
    with pytest.raises(ConfigError, match=r"agent.toml: unknown key readers.0.drivr .*'driver'"):
        load_config(path)


def test_wrong_type_names_key(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[[doors]]\nname = "a"\npin = "17"\n')
    with pytest.raises(ConfigError, match=r"doors.0.pin must be int"):
        load_config(path)
