"""``qatysu`` messages of issue 19: hints that work as typed, negative values, export dirs."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Run, Site


def test_init_next_hint_keeps_the_config_flag(tmp_path: Path, run: Run) -> None:
    config = tmp_path / "agent.toml"
    made = run("--config", config, "init", "--profile", "pi5-rc522", "--state-dir", tmp_path)
    assert made.code == 0, made.err
    assert made.out.splitlines()[-1] == (
        f"next: qatysu --config {config} config validate; "
        f"qatysu --config {config} enroll --portal URL --token TOKEN"
    )


def test_config_set_negative_value_is_checked_as_a_value(site: Site, run: Run) -> None:
    result = run("--config", site.config, "config", "set", "heartbeat.interval_s", "-5")
    assert result.code == 2
    assert "No such option" not in result.err and "heartbeat.interval_s" in result.err
