"""What an API caller asked of the answer (`/v1`): sampling for the model, and the limits every answer keeps.

A model gets all of `Sampling` in its request. Whatever writes the answer — a model that ignores `stop`,
the grounded composer that has no sampling at all, a strict replacement — the released text is also cut
here by `OutputLimit`, so `max_tokens` and `stop` mean the same thing for every provider: the answer ends
at the cap (`finish_reason: "length"`) or before the first stop sequence (`"stop"`, the sequence itself
not included), as OpenAI's own API does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from retrieval.tokens import encoding


class Sampling(BaseModel):
    """The caller's sampling parameters; None = the persona's own setting (or the model's default)."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=65_536)
    stop: list[str] = Field(default_factory=list, max_length=4)
    seed: int | None = None
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)

    def model_options(self) -> dict[str, Any]:
        """The request fields a model endpoint takes beside temperature and max_tokens (set ones only)."""
        options = self.model_dump(exclude={"temperature", "max_tokens"}, exclude_none=True)
        if not options.get("stop"):
            options.pop("stop", None)
        return options


class OutputLimit:
    """Cuts a streamed answer at `max_tokens` (cl100k tokens of the released text) or before a stop sequence.

    Text that could be the start of a stop sequence is held back until the next piece shows whether it is
    one, so a sequence split across pieces still ends the answer and never reaches the client.
    """

    def __init__(self, max_tokens: int | None = None, stop: list[str] | None = None) -> None:
        self.max_tokens = max_tokens
        self.stop = [s for s in (stop or []) if s]
        self.released = ""
        self.held = ""
        self.reason: str | None = None  # "length" or "stop" once the answer has ended here

    @classmethod
    def of(cls, sampling: Sampling | None) -> OutputLimit | None:
        if sampling is None or (sampling.max_tokens is None and not sampling.stop):
            return None
        return cls(sampling.max_tokens, sampling.stop)

    @property
    def ended(self) -> bool:
        return self.reason is not None

    def feed(self, text: str) -> str:
        """The part of `text` that may be shown now ("" once the answer has ended)."""
        if self.ended or not text:
            return ""
        buffer, ready = self.held + text, ""
        # the sequence that is complete first ends the answer (as a model checks after each token), so the
        # cut does not depend on how the stream was split into pieces
        found = [(i + len(s), i) for s in self.stop if (i := buffer.find(s)) >= 0]
        if found:
            end = min(found)[0]
            ready, self.held, self.reason = buffer[:min(i for e, i in found if e == end)], "", "stop"
        else:
            keep = max((n for s in self.stop for n in range(min(len(s) - 1, len(buffer)), 0, -1)
                        if s.startswith(buffer[-n:])), default=0)
            ready, self.held = buffer[:len(buffer) - keep], buffer[len(buffer) - keep:]
        return self._capped(ready)

    def flush(self) -> str:
        """At the end of the answer: what was held back was no stop sequence after all."""
        held, self.held = self.held, ""
        return self._capped(held)

    def _capped(self, ready: str) -> str:
        if self.max_tokens is None or not ready:
            self.released += ready
            return ready
        tokens = encoding().encode(self.released + ready, disallowed_special=())
        if len(tokens) <= self.max_tokens:
            self.released += ready
            return ready
        # a token that ends inside a multi-byte character is left out with the character
        kept = encoding().decode_bytes(tokens[:self.max_tokens]).decode("utf-8", errors="ignore")
        cut = kept[len(self.released):] if kept.startswith(self.released) else ""
        self.released += cut
        self.held, self.reason = "", "length"
        return cut
