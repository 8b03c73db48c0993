"""Request validation at the proxy's edge, shared by both wire formats.

Every field of a request body is hostile until checked here: the JSON nesting
depth (an iterative walk right after parsing, before anything recurses into the
body), sizes (messages, tools, names, the model string) and the type of every
top-level field. Each wire module keeps an explicit allow-list of top-level
fields (`router.server.openai_wire.FIELDS`, `router.server.anthropic_wire.FIELDS`);
a client's mistake is a `WireError` (HTTP 400) naming the offending path, in the
endpoint's own path style (`messages[0].content` for OpenAI, `messages.0.content`
for Anthropic).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from router.errors import WireError

__all__ = [
    "WireError", "Checker", "MAX_JSON_DEPTH", "MAX_MODEL_CHARS", "MAX_MESSAGES", "MAX_NAME_CHARS", "MAX_TOOLS",
    "MAX_PARTS", "MAX_STOP", "json_depth_limit", "check_depth",
]

MAX_JSON_DEPTH = 64  # objects/arrays inside each other, the body itself counting as 1
MAX_MODEL_CHARS = 256  # the longest catalog id is < 100 characters
MAX_MESSAGES = 10_000
MAX_PARTS = 10_000  # content parts / blocks in one message
MAX_TOOLS = 1_024
MAX_STOP = 64
MAX_NAME_CHARS = 256  # tool names, tool call ids, user ids, metadata keys
MAX_META_KEYS = 64
MAX_META_VALUE_CHARS = 1_024
_META_STRING = ("task", "user")  # metadata keys routing reads as a string
_META_STRINGS = ("tags", "region")  # metadata keys routing reads as a string or an array of strings
_PATH_SHOWN = 300  # characters of a too-deep path put in the error


def json_depth_limit(settings: Any) -> int:
    """`settings.limits.max_json_depth` when the config has it, else MAX_JSON_DEPTH."""
    v = getattr(getattr(settings, "limits", None), "max_json_depth", None)
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else MAX_JSON_DEPTH


def _key(k: Any) -> str:
    s = str(k)
    return s if len(s) <= 40 else s[:40] + "..."


def check_depth(body: Any, limit: int = MAX_JSON_DEPTH, *, anthropic: bool = False) -> None:
    """Raise WireError naming the path of the first value nested deeper than `limit`
    containers. Iterative (no recursion), one visit per container: cheap."""
    stack: list[tuple[Any, int, Any]] = [(body, 1, None)]
    pop, push = stack.pop, stack.append
    while stack:
        v, d, link = pop()
        if d > limit:
            parts: list[str] = []
            while link is not None:
                link, k = link
                parts.append(k)
            path = ""
            for k in reversed(parts):
                if isinstance(k, int):
                    path += f".{k}" if anthropic else f"[{k}]"
                else:
                    path += f".{_key(k)}"
            path = path.lstrip(".")
            if len(path) > _PATH_SHOWN:
                path = path[:_PATH_SHOWN] + "..."
            msg = f"JSON nested more than {limit} levels deep"
            raise WireError(f"{path}: {msg}" if anthropic else f"Invalid value for '{path}': {msg}.",
                            param=path, code="too_deep")
        if isinstance(v, dict):
            for k, x in v.items():
                if isinstance(x, (dict, list)):
                    push((x, d + 1, (link, k)))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                if isinstance(x, (dict, list)):
                    push((x, d + 1, (link, i)))


_JTYPE = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
          dict: "an object", type(None): "null"}


def jtype(v: Any) -> str:
    return _JTYPE.get(type(v), type(v).__name__)


class Checker:
    """Typed checks that raise WireError with the path, worded per endpoint."""

    __slots__ = ("anthropic",)

    def __init__(self, anthropic: bool) -> None:
        self.anthropic = anthropic

    def path(self, base: str, key: str | int) -> str:
        if isinstance(key, int):
            return f"{base}.{key}" if self.anthropic else f"{base}[{key}]"
        return f"{base}.{key}" if base else key

    # ------------------------------------------------------------------ errors
    def type_error(self, value: Any, path: str, what: str) -> WireError:
        if self.anthropic:
            return WireError(f"{path}: Input should be {what}", param=path, code="invalid_type")
        return WireError(f"Invalid type for '{path}': expected {what}, but got {jtype(value)}.", param=path,
                         code="invalid_type")

    def value_error(self, path: str, msg: str) -> WireError:
        if self.anthropic:
            return WireError(f"{path}: {msg}", param=path, code="invalid_value")
        return WireError(f"Invalid value for '{path}': {msg}", param=path, code="invalid_value")

    def unknown(self, path: str) -> WireError:
        if self.anthropic:
            return WireError(f"{path}: Extra inputs are not permitted", param=path, code="unknown_parameter")
        return WireError(f"Unrecognized request argument supplied: {path}", param=path, code="unknown_parameter")

    def refused(self, path: str, why: str) -> WireError:
        msg = f"{path}: not supported by this proxy: {why}" if self.anthropic else (
            f"{path} is not supported by this proxy: {why}")
        return WireError(msg, param=path, code="unsupported_parameter")

    # ------------------------------------------------------------------ checks
    def obj(self, v: Any, path: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.type_error(v, path, "an object" if not self.anthropic else "a valid dictionary")
        return v

    def arr(self, v: Any, path: str, max_items: int | None = None) -> list[Any]:
        if not isinstance(v, list):
            raise self.type_error(v, path, "an array" if not self.anthropic else "a valid list")
        if max_items is not None and len(v) > max_items:
            raise self.value_error(path, f"at most {max_items} items are allowed, got {len(v)}.")
        return v

    def string(self, v: Any, path: str, max_chars: int | None = None) -> str:
        if not isinstance(v, str):
            raise self.type_error(v, path, "a string" if not self.anthropic else "a valid string")
        if max_chars is not None and len(v) > max_chars:
            raise self.value_error(path, f"string too long: at most {max_chars} characters, got {len(v)}.")
        return v

    def boolean(self, v: Any, path: str) -> bool:
        if not isinstance(v, bool):
            raise self.type_error(v, path, "a boolean" if not self.anthropic else "a valid boolean")
        return v

    def integer(self, v: Any, path: str, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.type_error(v, path, "an integer" if not self.anthropic else "a valid integer")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.value_error(path, _range(lo, hi, v))
        return v

    def number(self, v: Any, path: str, lo: float | None = None, hi: float | None = None) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
            raise self.type_error(v, path, "a number" if not self.anthropic else "a valid number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.value_error(path, _range(lo, hi, v))
        return v

    def enum(self, v: Any, path: str, allowed: Collection[str]) -> str:
        if not isinstance(v, str) or v not in allowed:
            shown = repr(v) if isinstance(v, str) and len(v) <= 60 else jtype(v)
            raise self.value_error(path, f"{shown} is not one of {', '.join(repr(a) for a in allowed)}.")
        return v

    def only(self, d: dict[str, Any], path: str, allowed: Collection[str]) -> None:
        """Refuse keys of `d` outside `allowed` (nested objects the proxy translates)."""
        for k in d:
            if k not in allowed:
                raise self.unknown(self.path(path, _key(k)))

    def metadata(self, v: Any, path: str) -> dict[str, Any]:
        """The proxy's own request metadata (task, tags, region, user): a flat object of
        bounded scalars and lists of scalars."""
        d = self.obj(v, path)
        if len(d) > MAX_META_KEYS:
            raise self.value_error(path, f"at most {MAX_META_KEYS} keys are allowed, got {len(d)}.")
        for k, x in d.items():
            p = self.path(path, _key(k))
            if len(k) > MAX_NAME_CHARS:
                raise self.value_error(p, f"key too long: at most {MAX_NAME_CHARS} characters.")
            if k in _META_STRING and x is not None:
                self.string(x, p, MAX_META_VALUE_CHARS)
            if k in _META_STRINGS and x is not None and not isinstance(x, str):  # read by routing rules
                for i, y in enumerate(self.arr(x, p, MAX_META_KEYS)):
                    self.string(y, self.path(p, i), MAX_META_VALUE_CHARS)
            items = self.arr(x, p, MAX_META_KEYS) if isinstance(x, list) else (x,)
            for i, y in enumerate(items):
                q = self.path(p, i) if isinstance(x, list) else p
                if isinstance(y, str):
                    self.string(y, q, MAX_META_VALUE_CHARS)
                elif y is not None and not isinstance(y, (bool, int, float)):
                    raise self.type_error(y, q, "a string, number, boolean or null")
        return d


def _range(lo: float | None, hi: float | None, v: Any) -> str:
    shown = v if abs(v) < 10**15 else str(v)[:15] + "..."
    if lo is not None and hi is not None:
        return f"expected a value from {lo} to {hi}, got {shown}."
    if lo is not None:
        return f"expected a value >= {lo}, got {shown}."
    return f"expected a value <= {hi}, got {shown}."
