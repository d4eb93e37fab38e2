"""Context assembly: records and sources as prompt text, history trimmed to a token budget.

Token counts use tiktoken's offline cl100k_base encoding; trimming uses LangChain's `trim_messages`
(oldest history first; the system prompt and the current question are never part of what is cut).
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, trim_messages

from retrieval.search import SearchHit
from retrieval.tokens import count_tokens

RECORD_CHARS = 2400  # per record in the prompt; the full data still reaches the client as an event


def count_message_tokens(messages: list[BaseMessage]) -> int:
    """Approximate chat tokens: content plus a small per-message overhead (as OpenAI counts it)."""
    return sum(count_tokens(m.content if isinstance(m.content, str) else json.dumps(m.content)) + 4
               for m in messages) + 2


def trim_history(history: list[dict[str, str]], budget: int) -> list[BaseMessage]:
    """Keep the most recent history that fits in `budget` tokens, starting on a user message."""
    messages: list[BaseMessage] = [
        HumanMessage(h["content"]) if h["role"] == "user" else AIMessage(h["content"]) for h in history
    ]
    if budget <= 0 or not messages:
        return []
    return trim_messages(messages, max_tokens=budget, token_counter=count_message_tokens, strategy="last",
                         start_on="human", allow_partial=False)


def records_block(records: list[tuple[str, Any]]) -> str:
    if not records:
        return ""
    lines = ["## Records (the user's own data and platform data; quote numbers exactly)"]
    for name, data in records:
        text = json.dumps(data, default=str, separators=(",", ":"))
        if len(text) > RECORD_CHARS:
            text = text[:RECORD_CHARS] + "...(truncated)"
        lines.append(f"- {name}: {text}")
    return "\n".join(lines)


def sources_block(hits: list[SearchHit]) -> str:
    if not hits:
        return ""
    lines = ["## Sources"]
    for i, hit in enumerate(hits, 1):
        body = hit.text.split("\n\n", 1)[-1]
        lines.append(f"[{i}] {hit.title} › {hit.section}\n{body}")
    return "\n\n".join(lines)
