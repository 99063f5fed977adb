"""The one table of report formats, read by the CLI and the report API."""

from __future__ import annotations

import json

import pytest

from portal.api.reports import API_FORMATS
from portal.cli.reconcile import reconcile_command
from portal.reconcile.report import FORMATS, RENDERERS, render

from .support import START, ZONE, Log, confirm, run


def test_the_cli_offers_every_format_and_the_api_its_two() -> None:
    [fmt] = [p for p in reconcile_command.params if p.name == "fmt"]
    assert tuple(fmt.type.choices) == FORMATS == tuple(RENDERERS)  # type: ignore[attr-defined]
    assert API_FORMATS == ("json", "csv")  # the next formats come with their own change
    assert set(API_FORMATS) <= set(RENDERERS)


def test_every_renderer_gives_bytes_and_unknown_formats_are_refused() -> None:
    log = Log()
    log.boot_record(START - 3600_000)
    log.badge(START, "04A1B2C3")
    result = run([log.log], [confirm()])
    for name, renderer in RENDERERS.items():
        data = render(result, ZONE, name)
        assert data and renderer.extension and renderer.media_type, name
    assert json.loads(render(result, ZONE, "json"))["rows"][0]["status"] == "suspect"
    assert b"<table" in render(result, ZONE, "html")
    with pytest.raises(ValueError, match="is not one of table, csv, json, xlsx, html"):
        render(result, ZONE, "pdf")
