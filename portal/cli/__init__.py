"""The operator's command line, ``qatysu-portal`` (docs/portal.md).

Each command lives in its own module and registers itself on :data:`cli`.
Exit codes: 0 ok, 1 failure, 2 usage or invalid setting. Errors are one line,
``qatysu-portal: error: ...``; ``--debug`` re-raises instead.
"""

from __future__ import annotations

from portal.cli.base import cli, main

# Importing a command module registers its commands on ``cli``.
from portal.cli import serve as _serve  # noqa: F401  # isort: skip
from portal.cli import tokens as _tokens  # noqa: F401  # isort: skip
from portal.cli import centers as _centers  # noqa: F401  # isort: skip
from portal.cli import devices as _devices  # noqa: F401  # isort: skip
from portal.cli import import_bundle as _import_bundle  # noqa: F401  # isort: skip
from portal.cli import verify as _verify  # noqa: F401  # isort: skip
from portal.cli import imports as _imports  # noqa: F401  # isort: skip
from portal.cli import reconcile as _reconcile  # noqa: F401  # isort: skip
from portal.cli import schedule as _schedule  # noqa: F401  # isort: skip
from portal.cli import generate_city as _generate_city  # noqa: F401  # isort: skip
from portal.cli import risk as _risk  # noqa: F401  # isort: skip
from portal.cli import cards as _cards  # noqa: F401  # isort: skip

__all__ = ["cli", "main"]
