"""Back-compat alias: the mirror moved to the :mod:`pos3lite.mirror` package."""

from __future__ import annotations

from .mirror.context import *  # noqa: F403
from .mirror.context import _Mirror, _require_active  # noqa: F401
