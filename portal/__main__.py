"""``python -m portal``: the same as ``qatysu-portal``."""

from __future__ import annotations

import sys

from portal.cli import main

sys.exit(main())
