"""The one error tree in `router.errors`: each class's bases are pinned, the module's
docstring draws every class, and runtime code matches errors by class only (no
`type(e).__name__` comparisons, no `# type: ignore[attr-defined]` to hang `route` on an error)."""

from __future__ import annotations

import re
from pathlib import Path

import router.errors as errors
from benchmarks.rows import DatasetError
from router.errors import (
    AuthFailed,
    BadRequest,
    BudgetExceeded,
    ClientGone,
    ConfigError,
    ContentFiltered,
    ContextTooLong,
    Failure,
    LedgerUnavailable,
    MalformedResponse,
    NoRouteAvailable,
    PoolUnavailable,
    ProviderError,
    ProxyError,
    QuotaExhausted,
    QuotarouteError,
    RateLimited,
    Timeout,
    TruncatedResponse,
    UnencodableRequest,
    Unavailable,
    ModelNotServed,
    UpstreamBusy,
    UnknownModel,
    UnknownPrice,
    WireError,
)

ROOT = Path(__file__).resolve().parents[2]

TREE: dict[type, tuple[type, ...]] = {
    QuotarouteError: (Exception,),
    ProviderError: (QuotarouteError,),
    RateLimited: (ProviderError,),
    QuotaExhausted: (ProviderError,),
    AuthFailed: (ProviderError,),
    BadRequest: (ProviderError,),
    UnencodableRequest: (BadRequest,),
    ContextTooLong: (BadRequest,),
    ContentFiltered: (ProviderError,),
    Unavailable: (ProviderError,),
    UpstreamBusy: (Unavailable,),
    MalformedResponse: (Unavailable,),
    TruncatedResponse: (Unavailable,),
    Timeout: (ProviderError,),
    NoRouteAvailable: (QuotarouteError,),
    BudgetExceeded: (QuotarouteError,),
    PoolUnavailable: (QuotarouteError,),
    LedgerUnavailable: (QuotarouteError,),
    ConfigError: (QuotarouteError, ValueError),
    DatasetError: (ConfigError,),
    errors.MissingExtra: (errors.QuotarouteError,),
    UnknownModel: (QuotarouteError, KeyError),
    ModelNotServed: (UnknownModel,),
    UnknownPrice: (QuotarouteError,),
    ProxyError: (QuotarouteError,),
    Failure: (ProxyError,),
    WireError: (ProxyError, ValueError),
    ClientGone: (ProxyError,),
}


def test_each_class_has_the_pinned_bases() -> None:
    assert {cls: cls.__bases__ for cls in TREE} == TREE


def test_every_error_class_of_the_module_is_in_the_tree() -> None:
    mine = {v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, BaseException)
            and v.__module__ == errors.__name__}
    assert mine == {cls for cls in TREE if cls.__module__ == errors.__name__}


def test_the_docstring_draws_every_class() -> None:
    doc = errors.__doc__ or ""
    missing = [cls.__name__ for cls in TREE if not re.search(rf"[─ ]{cls.__name__}\b", doc)]
    assert not missing


def test_the_old_homes_hand_out_the_same_classes() -> None:
    from router.quota import PoolUnavailable as quota_pool
    from router.server.errors import Failure as server_failure
    from router.server.validate import WireError as validate_wire

    assert quota_pool is PoolUnavailable and server_failure is Failure and validate_wire is WireError


def test_route_attempts_and_last_error_are_declared() -> None:
    assert ProviderError("x").route is None
    assert NoRouteAvailable("x").route is None and NoRouteAvailable("x").attempts == []
    assert NoRouteAvailable("x").last_error is None
    assert BudgetExceeded("x").route is None and BudgetExceeded("x").attempts == []
    cause = RateLimited("slow")
    assert NoRouteAvailable("x", last_error=cause).last_error is cause


# `type(e).__name__ == "X"`, `"X" != type(e).__name__`, `e.__class__.__name__ in (...)`, ...
_NAME_MATCH = re.compile(
    r"(?:type\([^()]*\)|\.__class__)\.__name__\s*(?:==|!=|\bin\b|\bnot in\b)"
    r"|(?:==|!=|\bin\b)\s*(?:type\([^()]*\)|[\w.]+\.__class__)\.__name__"
    r"|\.__name__\s*(?:==|!=)\s*[\"'][A-Z]\w*(?:Error|Unavailable|Exceeded|Gone|Failure)[\"']")
_ROUTE_IGNORE = re.compile(r"\.(?:route|attempts|last_error)\s*=.*type:\s*ignore\[attr-defined\]")


def _runtime_sources() -> list[Path]:
    return sorted(p for pkg in ("router", "providers") for p in (ROOT / pkg).rglob("*.py"))


def test_runtime_code_matches_errors_by_class_not_by_name() -> None:
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in _runtime_sources()
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if _NAME_MATCH.search(line)]
    assert not hits, "match errors with isinstance / except, not by class name:\n" + "\n".join(hits)


def test_route_is_not_hung_on_errors_through_a_type_ignore() -> None:
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in _runtime_sources()
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if _ROUTE_IGNORE.search(line)]
    assert not hits, "declare the attribute on the error class instead:\n" + "\n".join(hits)


def test_the_greps_find_what_they_look_for() -> None:
    for bad in ('if type(e).__name__ != "PoolUnavailable":', "if e.__class__.__name__ == 'Timeout':",
                'ok = "X" == type(err).__name__', "if type(e).__name__ in ('A', 'B'):"):
        assert _NAME_MATCH.search(bad), bad
    for fine in ('msg = f"unexpected {type(e).__name__}"', "error_type=type(e).__name__,",
                 'return f"{type(self).__name__}(x)"'):
        assert not _NAME_MATCH.search(fine), fine
    assert _ROUTE_IGNORE.search("e.route = info  # type: ignore[attr-defined]")
    assert not _ROUTE_IGNORE.search("e.route = info")
