"""`quotaroute serve --router-factory tests.router.server.ledger_factory:build`: the
Router `serve` builds from the config, with the reservation lifetime taken from
`$QR_TEST_LEDGER_TTL_S` (so crash tests can wait past it in seconds, not minutes)."""

from __future__ import annotations

import os
from typing import Any


def build(config_path: str | None = None) -> Any:
    from router.server.cli import _make_router

    router = _make_router(config_path, None)
    ttl = os.environ.get("QR_TEST_LEDGER_TTL_S")
    if ttl:
        router.ledger.default_ttl_s = float(ttl)
    return router
