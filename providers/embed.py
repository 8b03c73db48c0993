"""Embeddings on the wire: request bodies and response parsing for each adapter family.

* OpenAI-compatible (`POST {base}/embeddings`): OpenAI, Azure, Mistral, DashScope
  compatible mode, Zhipu, SiliconFlow, Together, Ollama, vLLM. `{"model", "input",
  "dimensions"?, "user"?}` -> `{"data": [{"index", "embedding"}], "usage": {"prompt_tokens"}}`.
* Gemini native (`POST {base}/v1beta/models/{model}:batchEmbedContents`):
  `{"requests": [{"model": "models/{model}", "content": {"parts": [{"text"}]},
  "outputDimensionality"?}]}` -> `{"embeddings": [{"values": [...]}]}`; the reply carries
  no token count, so the router bills its estimate (`usage_reported=False`).
* Bedrock Titan Text Embeddings (`POST {base}/model/{id}/invoke`, one text per call):
  `{"inputText", "dimensions"?, "normalize": true}` -> `{"embedding", "inputTextTokenCount"}`.

The adapters (`OpenAIProvider.embed`, `GeminiProvider.embed`, `BedrockProvider.embed`)
send these through `providers._http` and map errors exactly as their chat calls do.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any

from providers._http import Call
from router.embed_types import EmbedCall
from router.errors import MalformedResponse
from router.tokens import estimate_tokens
from router.types import Usage

__all__ = ["openai_body", "parse_openai", "gemini_body", "parse_gemini", "titan_body", "parse_titan",
           "estimate_usage", "decode_base64"]


def estimate_usage(inputs: Sequence[Any]) -> Usage:
    """Input tokens of a batch when the vendor reported none (token ids count exactly)."""
    n = 0
    for x in inputs:
        n += len(x) if isinstance(x, (list, tuple)) else estimate_tokens(str(x))
    return Usage(input_tokens=n)


def decode_base64(s: str) -> list[float]:
    """A base64 string of little-endian float32s (OpenAI's `encoding_format: base64`)."""
    raw = base64.b64decode(s, validate=True)
    if len(raw) % 4:
        raise ValueError("base64 embedding is not a whole number of float32s")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _vector(v: Any, call: Call, where: str) -> list[float]:
    if isinstance(v, str):  # a vendor that answers base64 even when not asked
        try:
            return decode_base64(v)
        except (ValueError, TypeError) as e:
            raise MalformedResponse(f"{where}: invalid base64 embedding", provider=call.provider,
                                    model=call.model) from e
    if not isinstance(v, list) or not v or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                   for x in v):
        raise MalformedResponse(f"{where}: the embedding is not a list of numbers", provider=call.provider,
                                model=call.model, body=str(v)[:200])
    return [float(x) for x in v]


def _check_count(vectors: list[list[float]], n: int, call: Call) -> None:
    if len(vectors) != n:
        raise MalformedResponse(f"asked for {n} embeddings, got {len(vectors)}", provider=call.provider,
                                model=call.model)
    if len({len(v) for v in vectors}) > 1:
        raise MalformedResponse("embeddings of different lengths in one answer", provider=call.provider,
                                model=call.model)


# ------------------------------------------------------------------ OpenAI-compatible


def openai_body(call: EmbedCall) -> dict[str, Any]:
    body: dict[str, Any] = {"model": call.model, "input": list(call.inputs), "encoding_format": "float"}
    if call.dimensions is not None:
        body["dimensions"] = call.dimensions
    if call.user is not None:
        body["user"] = call.user
    return body


def parse_openai(data: Any, call: Call, n: int) -> tuple[list[list[float]], Usage | None, str]:
    """(vectors in input order, usage or None when not reported, the model that answered)."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise MalformedResponse("embeddings response has no `data` list", provider=call.provider,
                                model=call.model, body=str(data)[:500])
    rows = data["data"]
    out: list[list[float] | None] = [None] * len(rows)
    for pos, row in enumerate(rows):
        if not isinstance(row, dict):
            raise MalformedResponse("embeddings `data` item is not an object", provider=call.provider,
                                    model=call.model)
        i = row.get("index", pos)
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(rows) or out[i] is not None:
            raise MalformedResponse(f"embeddings `data` has a bad index {i!r}", provider=call.provider,
                                    model=call.model)
        out[i] = _vector(row.get("embedding"), call, f"data[{pos}]")
    vectors = [v for v in out if v is not None]
    _check_count(vectors, n, call)
    u = data.get("usage")
    usage = None
    if isinstance(u, dict):
        tok = u.get("prompt_tokens", u.get("total_tokens"))
        if isinstance(tok, int) and not isinstance(tok, bool) and tok >= 0:
            usage = Usage(input_tokens=tok)
    return vectors, usage, str(data.get("model") or call.model)


# ------------------------------------------------------------------ Gemini native


def gemini_body(call: EmbedCall) -> dict[str, Any]:
    name = call.model if call.model.startswith("models/") else f"models/{call.model}"
    reqs = []
    for text in call.inputs:
        r: dict[str, Any] = {"model": name, "content": {"parts": [{"text": str(text)}]}}
        if call.dimensions is not None:
            r["outputDimensionality"] = call.dimensions
        reqs.append(r)
    return {"requests": reqs}


def parse_gemini(data: Any, call: Call, n: int) -> list[list[float]]:
    if not isinstance(data, dict) or not isinstance(data.get("embeddings"), list):
        raise MalformedResponse("Gemini batchEmbedContents response has no `embeddings` list",
                                provider=call.provider, model=call.model, body=str(data)[:500])
    vectors = []
    for i, e in enumerate(data["embeddings"]):
        vectors.append(_vector(e.get("values") if isinstance(e, dict) else None, call, f"embeddings[{i}]"))
    _check_count(vectors, n, call)
    return vectors


# ------------------------------------------------------------------ Bedrock Titan


def titan_body(text: str, dimensions: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"inputText": text, "normalize": True}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return body


def parse_titan(data: Any, call: Call) -> tuple[list[float], int | None]:
    if not isinstance(data, dict):
        raise MalformedResponse("Titan embeddings response is not an object", provider=call.provider,
                                model=call.model, body=str(data)[:500])
    vec = _vector(data.get("embedding"), call, "embedding")
    tok = data.get("inputTextTokenCount")
    return vec, tok if isinstance(tok, int) and not isinstance(tok, bool) and tok >= 0 else None
