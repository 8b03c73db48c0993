"""Where quotaroute keeps its files, and which config file is read.

`home()` is the one place the home directory is computed (`$QUOTAROUTE_HOME`, else
`~/.quotaroute`); it is read at call time, so a test or a process may point it
elsewhere. `find_config()` is the one lookup of the config file.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["home", "find_config", "ENV_HOME", "ENV_CONFIG", "LOCAL_CONFIG"]

ENV_HOME = "QUOTAROUTE_HOME"
ENV_CONFIG = "QUOTAROUTE_CONFIG"
LOCAL_CONFIG = "quotaroute.yaml"


def home() -> Path:
    """The quotaroute home directory: `$QUOTAROUTE_HOME`, else `~/.quotaroute`."""
    return Path(os.path.expanduser(os.environ.get(ENV_HOME) or "~/.quotaroute"))


def find_config(explicit: str | os.PathLike[str] | None = None) -> str | None:
    """The config file to read, first match wins:

    1. `explicit` (`--config FILE`, `Router.from_config(path)`);
    2. `$QUOTAROUTE_CONFIG`;
    3. `./quotaroute.yaml` (the current directory), when it exists;
    4. `$QUOTAROUTE_HOME/config.yaml`, when it exists.

    An explicit path or the variable is returned even when the file is missing, so
    the loader reports it; None means "no config file" (defaults and environment)."""
    if explicit:
        return os.fspath(explicit)
    env = os.environ.get(ENV_CONFIG)
    if env:
        return env
    if os.path.isfile(LOCAL_CONFIG):
        return LOCAL_CONFIG
    p = home() / "config.yaml"
    return str(p) if p.is_file() else None
