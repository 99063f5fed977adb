"""HTTP routers: device-facing (``devices``), operator and auditor (``admin``), pages.

Other areas add routers without touching the app factory: a module named in
:data:`OPTIONAL_ROUTERS` that exists and has a ``router`` attribute is included.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["OPTIONAL_ROUTERS", "optional_routers"]

OPTIONAL_ROUTERS = ("portal.reconcile.api", "portal.reconcile.pages")


def optional_routers() -> list[Any]:
    """The ``router`` of every optional module that is installed."""
    found = []
    for name in OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if not (name == missing or name.startswith(missing + ".")):
                raise  # the module exists but one of its own imports is missing
            continue
        router = getattr(module, "router", None)
        if router is not None:
            found.append(router)
    return found
