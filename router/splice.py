"""The stream splice contract between the proxy and the adapters.

A proxy that can write to its client's socket itself sets `SPLICE` (a `Sink`) for the
task that pumps a stream. An adapter that supports splicing (OpenAI-compatible chat,
Anthropic Messages) then, once text is flowing, stops yielding one event per chunk: it reads the vendor's
bytes as they arrive (no task switch, no event object per chunk), picks out the text of
each plain text chunk with a flat scan, and hands the texts to `Sink.write_texts`, which
encodes them for the client's wire format and writes them at once. Anything that is not
plain text (a finish, usage, a tool call, reasoning, an error), the end of the body, a
transport error or a stall ends the splice, and the adapter reads on as usual.

Texts the sink wrote are accounted as follows: the adapter yields them as one
`SplicedText` event when the splice ends (the proxy does not send it again; the router
counts it as delivered, for billing and for finishing a cut answer), and when the pump
is cancelled during a splice, the router takes the texts still in `Sink.pending`.

Pure: no I/O, nothing at import.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Protocol

from router.types import TextDelta, text_delta

__all__ = ["SPLICE", "Sink", "SplicedText", "spliced_text", "take_pending"]


class Sink(Protocol):
    """What the proxy gives a splicing adapter (one per stream)."""

    pending: list[str]  # texts written to the client, not yet reported as a `SplicedText`

    def write_texts(self, texts: list[str]) -> bool:
        """Encode and write `texts` (already appended to `pending` by the caller); False
        when the client is not keeping up (the adapter then pauses reading upstream)."""

    def when_drained(self, resume: Callable[[], None]) -> None:
        """Call `resume` once the client has taken what was written."""


SPLICE: ContextVar[Sink | None] = ContextVar("quotaroute_splice", default=None)


class SplicedText(TextDelta):
    """Text the sink already wrote to the client: counted, never sent again."""


def spliced_text(text: str) -> SplicedText:
    ev = text_delta(text)
    object.__setattr__(ev, "__class__", SplicedText)
    return ev  # type: ignore[return-value]


def take_pending() -> str:
    """The texts the current task's sink wrote that no event reported yet (a splice that
    was cancelled), emptied."""
    sink = SPLICE.get()
    if sink is None or not sink.pending:
        return ""
    text = "".join(sink.pending)
    sink.pending.clear()
    return text
