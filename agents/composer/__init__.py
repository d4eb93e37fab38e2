"""The grounded composer: the default offline answerer, with no language model at all.

It writes each answer from the turn's evidence only — tool results rendered as plain sentences and
units (sentences, list items, table rows, config lines) quoted from the cited chunks, picked by
similarity to the question with the MiniLM model already loaded — arranged by the persona's structure
(`agents/composer/structures.py`). It quotes; it does not reason: it cannot answer what no source says,
and says so. Deterministic: the same evidence gives the same answer. It streams word by word like a model.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

from agents.evidence import Evidence
from agents.llm import ModelHealth, ModelReply

_PIECES = re.compile(r"\s*\S+")


class GroundedComposer:
    """Not a model provider: it reads a turn's evidence, not a prompt, so the runtime asks it to `compose`
    explicitly (agents/runtime.py) rather than streaming from it."""

    name = "grounded-composer"
    supports_tools = False

    async def health(self) -> ModelHealth:
        return ModelHealth(ok=True, reachable=True)

    def write(self, evidence: Evidence, structure: str) -> str:
        from agents.composer.structures import STRUCTURES

        return STRUCTURES[structure](evidence).strip()

    def compose(self, evidence: Evidence, structure: str, *, cancel: threading.Event | None = None
                ) -> Iterator[str | ModelReply]:
        text = self.write(evidence, structure)
        sent = []
        for piece in _PIECES.findall(text):
            if cancel is not None and cancel.is_set():
                break
            sent.append(piece)
            yield piece
        answer = "".join(sent)
        # counted by the runtime: the prompt as a model would have read it (the persona's prompt, the records
        # and sources, the history and the question), the completion as released (max_tokens may cut it)
        yield ModelReply(text=answer, prompt_tokens=None, completion_tokens=None,
                         finish_reason="cancelled" if cancel is not None and cancel.is_set() else "stop")


COMPOSER = GroundedComposer()
