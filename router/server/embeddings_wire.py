"""The OpenAI embeddings wire: `POST /v1/embeddings` JSON -> `EmbedRequest`, and back.

Top-level fields are an allow-list (`FIELDS`): `model`, `input` (a string, strings,
token ids or token-id arrays), `dimensions`, `encoding_format` (`float` | `base64`:
little-endian float32s, base64, exactly as OpenAI sends them) and `user`. Anything else
is a 400 naming the field. The response body is OpenAI's (`object: list`, `data[]`,
`model`, `usage.prompt_tokens`/`total_tokens`).

One proxy request, read downward: app.py -> handlers.py (`embeddings`) -> embeddings_wire.py
-> router/sdk.py (`Router.aembed`) -> router/embed_run.py -> the adapters' `embed()`.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.embed_run import RoutedEmbeddings
from router.embeddings import EmbedRequest, embed_request
from router.errors import WireError

__all__ = ["FIELDS", "parse_embeddings_request", "embeddings_response"]

FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})


def parse_embeddings_request(data: Any) -> EmbedRequest:
    if not isinstance(data, dict):
        raise WireError("The request body must be a JSON object.")
    for k in data:
        if k not in FIELDS:
            raise WireError(f"Unrecognized request argument supplied: {str(k)[:60]}", param=str(k)[:60],
                            code="unknown_parameter")
    if "input" not in data:
        raise WireError("`input` is required.", param="input")
    return embed_request(data["input"], model=data.get("model", "auto"), dimensions=data.get("dimensions"),
                         encoding_format=data.get("encoding_format"), user=data.get("user"))


def embeddings_response(out: RoutedEmbeddings, req: EmbedRequest, model: str) -> bytes:
    return orjson.dumps(out.as_openai(req.encoding_format, model=model))
