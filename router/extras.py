"""Optional dependencies: a module from an extra that is not installed fails with one
clear line naming the extra, never a traceback.

    plt = need("matplotlib.pyplot", extra="bench", purpose="the frontier plot")

`quotaroute` prints a `MissingExtra` as one line and exits 2.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from router.errors import MissingExtra

__all__ = ["MissingExtra", "need"]


def need(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import `module`, or raise `MissingExtra`: "<purpose> needs <pkg>: pip install 'quotaroute[<extra>]'"."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pkg = module.split(".")[0]
        raise MissingExtra(f"{purpose} needs {pkg}, which is not installed: pip install 'quotaroute[{extra}]' "
                           f"(from a checkout: pip install -e '.[{extra}]')") from None
