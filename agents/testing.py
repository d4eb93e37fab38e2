"""Scripted models that stand in for a real one, shipped with the package the way pydantic-ai ships its
TestModel: `ScriptedProvider` streams a fixed reply word by word (server and browser tests), and
`ScriptedEvalModel` answers like a small tool-calling model, from rules (the eval runner's reference
run). Neither is ever chosen by configuration; tests and evals pass them in."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, ToolMessage

from agents.llm import ChatProvider, ModelReply, ToolCallRequest

RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(revenue|earn(ed|ings)?|income|made)\b", re.I), "my_revenue_summary"),
    (re.compile(r"\bmy (past |recent |current )?(clients?|client projects?|contracts?)\b", re.I), "my_client_projects"),
    (re.compile(r"\b(find|open|available|looking for)\b.*\bprojects?\b", re.I), "search_projects"),
    (re.compile(r"\b(look (it )?up|search the (docs|help|lessons))\b", re.I), "search_knowledge"),
]
SOURCE_HEAD = re.compile(r"^\[1\] (.+?)\n(.+?)(?:\n\n|\Z)", re.M | re.S)


class ScriptedEvalModel(ChatProvider):
    """A deterministic tool-calling model for evals: same input, same tool calls, same answer, every run, so
    the numbers measure *our* part (tools up front, retrieval, escalation, citations) without a model's noise.
    With tools offered it calls those the question asks for, by keyword (revenue → revenue summary, "my
    clients" → client projects, "find projects" → project search, "look up" → knowledge search); after tool
    results, or without tools, it answers from the first source in its system prompt, cited as [1]."""

    name = "scripted-eval-model"
    supports_tools = True

    def stream(self, messages: list[BaseMessage], *, tools: list[dict] | None = None, temperature: float = 0.4,
               max_tokens: int = 400, cancel: threading.Event | None = None,
               options: dict | None = None) -> Iterator[str | ModelReply]:
        question = next((str(m.content) for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        system = next((str(m.content) for m in messages if isinstance(m, SystemMessage)), "")
        answered_tools = any(isinstance(m, ToolMessage) for m in messages)
        if tools and not answered_tools:
            offered = {t["function"]["name"] for t in tools}
            calls = [ToolCallRequest(id=f"call_{i}_{name}", name=name, args=_args(name, question))
                     for i, (pattern, name) in enumerate(RULES) if name in offered and pattern.search(question)]
            if calls:
                yield ModelReply(tool_calls=calls, prompt_tokens=_words(system) + _words(question),
                                 completion_tokens=8 * len(calls), finish_reason="tool_calls")
                return
        text = _answer(system)
        words = text.split(" ")
        for i, word in enumerate(words):
            if cancel is not None and cancel.is_set():
                break
            yield word if i == 0 else " " + word
        yield ModelReply(text=text, prompt_tokens=_words(system) + _words(question), completion_tokens=len(words))


def _args(tool: str, question: str) -> dict:
    if tool == "search_projects":
        words = [w for w in re.findall(r"[A-Za-z][\w.+#-]+", question) if w[0].isupper() and len(w) > 2]
        return {"text": words[0]} if words else {}
    if tool == "search_knowledge":
        return {"query": question[:300]}
    return {}


def _answer(system: str) -> str:
    found = SOURCE_HEAD.search(system)
    if not found:
        return "I could not find this in the sources or your records, so I will not guess."
    title, body = found.group(1).strip(), " ".join(found.group(2).split())
    sentence = re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0][:240]
    return f"From {title} [1]: {sentence}"


def _words(text: str) -> int:
    return len(text.split())


REPLY = ("Here is what the records show. **Fees** depend on your plan, and the numbers above come from the "
         "platform's own data [1]. Ask me about rates, proposals or payments any time; I can also open a "
         "ticket if you need a person.")
HOSTILE = "Careful: <img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script> stays text."


class ScriptedProvider(ChatProvider):
    name = "scripted-test-model"
    supports_tools = False

    def __init__(self, delay_s: float = 0.03, finish: str = "stop") -> None:
        self.delay_s = delay_s
        self.finish = finish  # "length": as if the model hit its token limit

    def stream(self, messages, *, tools=None, temperature=0.4, max_tokens=400, cancel=None, options=None):
        question = messages[-1].content if messages else ""
        text = HOSTILE if "xss" in str(question).lower() else REPLY
        sent = []
        for word in text.split(" "):
            if cancel is not None and cancel.is_set():
                break
            piece = word if not sent else " " + word
            sent.append(piece)
            yield piece
            time.sleep(self.delay_s)
        yield ModelReply(text="".join(sent), finish_reason="cancelled" if cancel is not None and cancel.is_set()
                         else self.finish)
