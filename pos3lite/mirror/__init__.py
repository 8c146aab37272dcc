"""The mirror: registrations, scans, the sync state, exit policy, scheduler and context.

Modules, by what they hold:

* ``context``   ``mirror()``, ``with_mirror``, ``download``/``upload``/``sync``/``ls``, plans;
* ``registry``  registrations and their local-folder locks (in process and across processes);
* ``scan``      remote and local listings streamed into the engine;
* ``state``     the sync state (sqlite3): what was last in sync, per registration and key;
* ``policy``    pure exit and background decisions;
* ``scheduler`` background ticks with an injected clock.

The package shares its name with the public function :func:`pos3lite.mirror`. Importing a
submodule binds the package as ``pos3lite.mirror``; ``context`` rebinds the function when it
loads, and the package itself is callable (it forwards to the function) so
``pos3lite.mirror()`` works whatever was imported first. Nothing is imported here, so
``import pos3lite.mirror.policy`` stays light.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    """``pos3lite.mirror(...)`` keeps working if the package shadows the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .context import mirror

        return mirror(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
