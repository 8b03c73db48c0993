"""router.splice: the contract's pure parts."""

from __future__ import annotations

from router.splice import SPLICE, SplicedText, spliced_text, take_pending
from router.types import TextDelta, accumulate


class Sink:
    def __init__(self) -> None:
        self.pending: list[str] = []

    def write_texts(self, texts: list[str]) -> bool:  # pragma: no cover
        return True

    def when_drained(self, resume: object) -> None:  # pragma: no cover
        pass


def test_a_spliced_text_is_a_text_event_the_proxy_can_tell_apart() -> None:
    ev = spliced_text("hello")
    assert isinstance(ev, TextDelta) and type(ev) is SplicedText and ev.kind == "text" and ev.text == "hello"
    assert accumulate([ev], provider="p", model="m").text == "hello"


def test_take_pending_empties_the_current_sink() -> None:
    assert take_pending() == ""
    s = Sink()
    tok = SPLICE.set(s)
    try:
        s.pending += ["a", "b"]
        assert take_pending() == "ab" and s.pending == []
        assert take_pending() == ""
    finally:
        SPLICE.reset(tok)
