"""Stop strings in streamed text: emit what cannot start one, cut at the first found."""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Finds stop strings in streamed text and holds back text that may start one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.maxlen = max((len(s) for s in self.stops), default=0)
        self.text = ""
        self.emitted = 0

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add text; return (text safe to emit now, whether a stop string was found)."""
        self.text += piece
        if not self.stops:
            out, self.emitted = self.text[self.emitted :], len(self.text)
            return out, False
        # A stop string cannot lie wholly inside emitted text (it would have been caught),
        # so search only from where one could still begin.
        start = max(0, self.emitted - self.maxlen)
        hits = [i for s in self.stops if (i := self.text.find(s, start)) >= 0]
        if hits:
            cut = min(hits)
            out = self.text[self.emitted : cut]
            self.text = self.text[:cut]
            self.emitted = cut
            return out, True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.text)), hold, -1):
                if self.text.endswith(s[:k]):
                    hold = k
                    break
        safe = len(self.text) - hold
        out = self.text[self.emitted : safe]
        self.emitted = max(self.emitted, safe)
        return out, False

    def finish(self) -> str:
        """Release held-back text at the end of generation."""
        out, self.emitted = self.text[self.emitted :], len(self.text)
        return out
