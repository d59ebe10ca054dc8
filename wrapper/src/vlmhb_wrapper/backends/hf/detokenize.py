"""Token ids -> text deltas for a streamed answer (:class:`IncrementalText`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["IncrementalText"]


class IncrementalText:
    """Token ids -> text deltas, with OpenAI ``stop`` semantics.

    Decodes a sliding window (``prefix_offset``/``read_offset``, as TGI and vLLM do) so a
    token that only completes a multi-byte character is held until the character is whole.
    With stop sequences, the last ``max(len(stop)) - 1`` characters are held back until it is
    clear they do not start a stop sequence; the text is cut before the first stop sequence.
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str] = ()) -> None:
        self._tok = tokenizer
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0
        self.text = ""
        self._emitted = 0
        self._stops = tuple(stops)
        self._hold = max((len(s) for s in stops), default=1) - 1
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True)

    def push(self, token: int) -> str:
        """Add one token; returns the text that may be sent now (may be empty)."""
        self._ids.append(token)
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.text += new_text[len(prefix_text) :]
            self._prefix, self._read = self._read, len(self._ids)
        return self._release(final=False)

    def finish(self) -> str:
        """No more tokens: flush what was held back."""
        if self._read < len(self._ids) and not self.stopped:
            prefix_text = self._decode(self._ids[self._prefix : self._read])
            new_text = self._decode(self._ids[self._prefix :])
            self.text += new_text[len(prefix_text) :]
            self._read = len(self._ids)
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        if self.stopped:
            return ""
        if self._stops:
            start = max(0, self._emitted - self._hold)
            hits = [i for s in self._stops if (i := self.text.find(s, start)) >= 0]
            if hits:
                cut = min(hits)
                delta = self.text[self._emitted : cut]
                self.text = self.text[:cut]
                self._emitted = cut
                self.stopped = True
                return delta
        safe = len(self.text) if final else len(self.text) - self._hold
        if safe <= self._emitted:
            return ""
        delta = self.text[self._emitted : safe]
        self._emitted = safe
        return delta
