"""What one turn knows: the question, the records its tools returned and the sources it cited.

The grounded composer writes only from this, and the grounding check holds every answer to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.grounding import EvidenceIndex, build_index
from retrieval.search import SearchHit


@dataclass
class Handoff:
    ticket_id: int
    reason: str
    already_open: bool = False  # the request was added to an open ticket
    elsewhere: bool = False  # ... of another of the customer's conversations


@dataclass
class Evidence:
    persona: str
    question: str
    history: list[dict[str, str]] = field(default_factory=list)
    records: list[tuple[str, Any]] = field(default_factory=list)  # (tool name, data); failed calls excluded
    hits: list[SearchHit] = field(default_factory=list)  # cited sources; hits[i] is marker [i + 1]
    handoff: Handoff | None = None
    signed_in: bool = False
    mode: str = "chat"
    system_prompt: str = ""
    question_vector: np.ndarray | None = None  # the question's embedding, when retrieval already computed it
    missing_words: list[str] = field(default_factory=list)  # its subject words that no searched document contains
    ticket_refused: str | None = None  # why no ticket could be opened, in the customer's words

    def record(self, name: str) -> Any:
        """The latest successful result of a tool (or a computed record such as the client brief)."""
        return next((data for n, data in reversed(self.records) if n == name), None)

    def index(self) -> EvidenceIndex:
        texts = [self.question, self.system_prompt, *(h.get("content", "") for h in self.history),
                 *(hit.text for hit in self.hits)]
        if self.handoff:
            texts.append(json.dumps({"ticket_id": self.handoff.ticket_id}))
        return build_index(texts, [data for _, data in self.records])
