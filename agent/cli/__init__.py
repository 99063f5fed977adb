"""The technician's command line, ``qatysu`` (docs/technician.md).

Each command lives in its own module and registers itself on :data:`cli`.
Exit codes: 0 ok, 1 failure, 2 usage or invalid config. Errors are one line,
``qatysu: error: ...``; ``--debug`` re-raises instead.
"""

from __future__ import annotations

from agent.cli.base import cli, main

# Importing a command module registers its commands on ``cli``.
from agent.cli import verify as _verify  # noqa: F401  # isort: skip

__all__ = ["cli", "main"]
from agent.cli import init as _init  # noqa: F401  # isort: skip
from agent.cli import profiles as _profiles  # noqa: F401  # isort: skip
from agent.cli import config_cmd as _config_cmd  # noqa: F401  # isort: skip
from agent.cli import enroll as _enroll  # noqa: F401  # isort: skip
from agent.cli import status as _status  # noqa: F401  # isort: skip
from agent.cli import doctor as _doctor  # noqa: F401  # isort: skip
from agent.cli import testcmd as _testcmd  # noqa: F401  # isort: skip
from agent.cli import run as _run  # noqa: F401  # isort: skip
from agent.cli import upload as _upload  # noqa: F401  # isort: skip
from agent.cli import export as _export  # noqa: F401  # isort: skip
from agent.cli import station as _station  # noqa: F401  # isort: skip
