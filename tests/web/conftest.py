"""The pages' test site (tests/web/support.py), one for the package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import Site, serve_city


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serve_city(tmp_path_factory.mktemp("pages") / "data") as served:
        yield served
