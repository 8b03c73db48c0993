"""The cache key: sha256 over a canonical JSON encoding of everything that can change
the answer.

That is the whole normalized `ChatRequest` (the requested model or virtual model name,
system, messages, tools, tool_choice, response_format, sampling parameters, reasoning
settings, stop, seed, user, metadata, vendor `extra_body`), minus `stream` (a cached
answer replays either way), plus the owner (a proxy key id, or "*" when shared) and the
pinned tags (rules may route on them). Keys are sorted and unset fields dropped, so two
requests that differ only in JSON key order or an explicit `null` share an entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from router.types import ChatRequest

__all__ = ["request_key", "canonical", "VERSION"]

VERSION = 1  # bump when the encoding (or the entry format) changes: old entries are then never read


def canonical(req: ChatRequest, owner: str, tags: Sequence[str] = ()) -> bytes:
    """The bytes that are hashed (sorted keys, no unset fields, no `stream`)."""
    body: dict[str, Any] = req.model_dump(mode="json", exclude={"stream"}, exclude_none=True)
    if not body.get("metadata"):
        body.pop("metadata", None)
    if not body.get("extra_body"):
        body.pop("extra_body", None)
    return orjson.dumps({"v": VERSION, "owner": owner, "tags": sorted(tags), "request": body},
                        option=orjson.OPT_SORT_KEYS)


def request_key(req: ChatRequest, owner: str, tags: Sequence[str] = ()) -> str:
    """sha256 hex digest of `canonical(req, owner, tags)`."""
    return hashlib.sha256(canonical(req, owner, tags)).hexdigest()
