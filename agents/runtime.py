"""One turn, as a stream of typed events.

persona → checks (identity, project) → up-front tools and retrieval (events as they happen) →
escalation for personas that have it → messages (system prompt + records + sources, trimmed
history, the question) → the model, streaming; with native tool calling it may call the persona's
tools in a bounded loop, each run as the caller → persona finalisers (save the proposal draft) →
`done` with usage (backend counts, or tiktoken when the backend reports none).

The tool loop is ours rather than LangChain's agent executor because every call must run under the
caller's identity, be bounded, and surface as events the server persists; LangChain supplies the
chat models, message types, tool schemas, streaming and history trimming.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel, Field

from agents.context import count_message_tokens, records_block, sources_block, trim_history
from agents.events import (
    CitationEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    HandoffEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
    Usage,
)
from agents.llm import ChatProvider, LLMError, ModelReply
from agents.personas import Persona, get_persona
from agents.sentiment import is_upset, wants_human
from agents.simulation import client_brief, wants_feedback
from agents.tools import TOOLS, ToolContext, ToolOutcome, detect_skill, run_tool
from retrieval.embedder import get_embedder
from retrieval.search import SearchHit, search
from retrieval.tokens import count_tokens
from store.db import Database
from store.errors import MentorError

# Best help-center match farther than this (cosine distance) = nothing relevant. Measured on 12
# on-topic support questions (worst 0.618) and 10 off-topic ones (best 0.847); see tests/test_agents.py.
NO_ANSWER_DISTANCE = 0.72
_EMBEDDING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")  # the model runs one call at a time
PROJECT_REF = re.compile(r"(?:project\s*(?:id\s*)?#?|#)(\d{1,9})\b", re.I)


class HistoryMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class TurnRequest(BaseModel):
    persona: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=8000)
    user_id: int | None = None
    history: list[HistoryMessage] = Field(default_factory=list)
    project_id: int | None = Field(None, gt=0)
    mode: Literal["chat", "simulate_client"] = "chat"
    conversation_id: str | None = None


class _Turn:
    def __init__(self, req: TurnRequest, persona: Persona, db: Database, provider: ChatProvider,
                 cancel: threading.Event | None) -> None:
        self.req, self.persona, self.db, self.provider = req, persona, db, provider
        self.cancel = cancel or threading.Event()
        transcript = "\n".join(f"{h.role}: {h.content}" for h in req.history) + f"\nuser: {req.text}"
        self.ctx = ToolContext(db=db, user_id=req.user_id, allowed_corpora=persona.corpora,
                               transcript=transcript.strip(), conversation_id=req.conversation_id)
        self.records: list[tuple[str, Any]] = []
        self.hits: list[SearchHit] = []
        self.answer = ""
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.backend_counted = True
        self.saved_draft = False
        self.citation_ids: set[int] = set()
        self.finish = "stop"

    # -- helpers ----------------------------------------------------------------------------
    def call_tool(self, name: str, args: dict[str, Any], call_id: str | None = None,
                  allowed: list[str] | None = None, refused: str | None = None) -> Iterator[Event]:
        """Run a tool as the caller and emit the call and its result; `refused` = an error instead of running."""
        call_id = call_id or f"call_{uuid.uuid4().hex[:12]}"
        yield ToolCallEvent(id=call_id, name=name, args=args)
        outcome = ToolOutcome(name, error=refused) if refused else run_tool(name, args, self.ctx, allowed=allowed)
        self.last_outcome = outcome
        yield ToolResultEvent(id=call_id, name=name, data=outcome.data, error=outcome.error)
        self.records.append((name, outcome.data if outcome.error is None else {"error": outcome.error}))
        if name == "save_proposal_draft" and outcome.error is None:
            self.saved_draft = True
        if name == "search_knowledge" and outcome.data:
            yield from self.cite([SearchHit(corpus="", anchor="", score=0, **{k: r[k] for k in (
                "chunk_id", "title", "section", "source", "text")}) for r in outcome.data["results"]])

    def cite(self, hits: list[SearchHit]) -> Iterator[Event]:
        for hit in hits:
            if hit.chunk_id in self.citation_ids:
                continue
            self.citation_ids.add(hit.chunk_id)
            self.hits.append(hit)
            body = " ".join(hit.text.split("\n\n", 1)[-1].split())
            yield CitationEvent(index=len(self.hits), chunk_id=hit.chunk_id, corpus=hit.corpus, source=hit.source,
                                title=hit.title, section=hit.section, anchor=hit.anchor,
                                snippet=body[:280] + ("…" if len(body) > 280 else ""))

    def variables(self) -> dict[str, Any]:
        return {"$skill": detect_skill(self.db, self.req.text), "$project_id": self.req.project_id}

    # -- phases -----------------------------------------------------------------------------
    def upfront(self) -> Iterator[Event]:
        variables = self.variables()
        for call in self.persona.upfront:
            tool = TOOLS[call.tool]
            if tool.private and self.req.user_id is None:
                continue
            args = {}
            for key, value in call.args.items():
                resolved = variables.get(value, value) if isinstance(value, str) else value
                if resolved is not None:
                    args[key] = resolved
            yield from self.call_tool(call.tool, args)

    def embed_early(self) -> Future[np.ndarray] | None:
        """Start embedding the question now; torch runs it while the up-front tools wait on the database."""
        if not self.persona.corpora or not self.persona.retrieval_k:
            return None
        return _EMBEDDING.submit(get_embedder().embed_query, self.req.text)

    def retrieve(self, query: str, vector: Future[np.ndarray] | None = None) -> Iterator[Event]:
        if not self.persona.corpora or not self.persona.retrieval_k:
            return
        hits = search(self.db, query, corpora=self.persona.corpora, k=self.persona.retrieval_k,
                      metadata=self.persona.retrieval_filter, vector=vector.result() if vector else None)
        yield from self.cite(hits)

    def escalate(self) -> Iterator[Event]:
        text = self.req.text
        reason = None
        if wants_human(text):
            reason = "user_request"
        elif is_upset(text):
            reason = "upset"
        elif not self.hits or min((h.distance for h in self.hits if h.distance is not None), default=1.0) \
                > NO_ANSWER_DISTANCE:
            reason = "no_answer"
        if reason is None:
            return
        subject = " ".join(text.split())[:80]
        yield from self.call_tool("create_support_ticket", {"subject": subject, "reason": reason})
        if self.last_outcome.error is None:
            yield HandoffEvent(ticket_id=self.last_outcome.data["ticket_id"], reason=reason)

    def system_prompt(self) -> str:
        persona = self.persona
        if self.req.mode == "simulate_client":
            brief = next((data for name, data in self.records if name == "client_brief"), None)
            if wants_feedback(self.req.text):
                base = persona.read_prompt("sarah_feedback.md")
            else:
                base = persona.read_prompt("sarah_client.md") + "\n\n## The client you play\n" + json.dumps(brief)
                return base  # in role: no records or sources, the client knows only its own brief
        else:
            base = persona.system_prompt()
        parts = [base, records_block(self.records), sources_block(self.hits)]
        return "\n\n".join(p for p in parts if p)

    def simulation_setup(self) -> Iterator[Event]:
        if self.req.project_id is None:
            raise MentorError("client simulation needs a project: pass its id")
        yield from self.call_tool("get_project", {"project_id": self.req.project_id})
        project = self.last_outcome.data
        if project is None:
            raise MentorError(self.last_outcome.error or "project not found")
        yield from self.call_tool("market_rates", {"skill": project["skills"][0],
                                                    "segment": project["experience_level"]})
        brief = client_brief(project, self.last_outcome.data)
        self.records.append(("client_brief", brief.model_dump()))

    def generate(self, messages: list[BaseMessage]) -> Iterator[Event]:
        gen = self.persona.generation
        tools = [TOOLS[t].openai_schema() for t in self.persona.tools
                 if not (TOOLS[t].private and self.req.user_id is None)] if self.provider.supports_tools else None
        if self.req.mode == "simulate_client":
            tools = None
        steps = 0
        while True:
            reply, step_text = ModelReply(), ""
            for piece in self.provider.stream(messages, tools=tools or None, temperature=gen.temperature,
                                              max_tokens=gen.max_tokens, cancel=self.cancel):
                if isinstance(piece, str):
                    step_text += piece
                    yield TokenEvent(delta=piece)
                else:
                    reply = piece
            self.answer += step_text
            self.count_usage(messages, reply, step_text)
            if self.cancel.is_set():
                self.finish = "cancelled"
                return
            if reply.finish_reason == "length":
                self.finish = "length"
            if not reply.tool_calls:
                return
            if steps >= gen.max_tool_steps:
                self.finish = "tool_steps"
                return
            steps += 1
            messages.append(AIMessage(content=reply.text, tool_calls=[
                {"id": c.id, "name": c.name, "args": c.args} for c in reply.tool_calls]))
            for call in reply.tool_calls:
                # malformed arguments: tell the model, and the user, instead of guessing them
                refused = None if call.malformed is None else \
                    f"the model sent malformed arguments for {call.name}: {call.malformed[:200]!r}"
                yield from self.call_tool(call.name, call.args, call_id=call.id, allowed=self.persona.tools,
                                          refused=refused)
                outcome: ToolOutcome = self.last_outcome
                content = json.dumps(outcome.data if outcome.error is None else {"error": outcome.error},
                                     default=str)
                messages.append(ToolMessage(content=content[:6000], tool_call_id=call.id))

    def count_usage(self, messages: list[BaseMessage], reply: ModelReply, step_text: str) -> None:
        """Add this model call's tokens: the backend's counts, else tiktoken over what was sent and streamed."""
        if reply.prompt_tokens is None or reply.completion_tokens is None:
            self.backend_counted = False
            self.prompt_tokens += count_message_tokens(messages)
            self.completion_tokens += count_tokens(step_text)
        else:
            self.prompt_tokens += reply.prompt_tokens
            self.completion_tokens += reply.completion_tokens

    def finalize_draft(self) -> Iterator[Event]:
        if self.saved_draft or self.req.user_id is None:
            return
        bid = next((data for name, data in self.records if name == "recommend_bid" and "amount" in data), None)
        project = next((data for name, data in self.records if name == "get_project" and "title" in data), None)
        if bid is None or project is None:
            return
        letter = self.answer.strip()
        source = "model"
        if len(letter) < 80 or not quotes_amount(letter, bid["amount"]):
            # A letter that never states the recommended bid is not a usable proposal (the tiny local
            # model often rambles); the factual template carries the bid, the plan and the proof.
            letter, source = template_letter(project, self.records, bid), "template"
        yield from self.call_tool("save_proposal_draft", {
            "project_id": project["id"], "cover_letter": letter, "bid_amount": bid["amount"],
            "bid_type": bid["bid_type"], "estimated_hours": bid["estimated_hours"],
            "rationale": {"reasoning": bid["reasoning"], "percentiles": bid["percentiles"],
                          "range": [bid["range_low"], bid["range_high"]], "cover_letter_source": source},
        })

    def run(self) -> Iterator[Event]:
        req, persona = self.req, self.persona
        behaviours = set(persona.behaviours)
        if req.user_id is None and not persona.anonymous:
            yield ErrorEvent(code="sign_in_required", message=f"{persona.name} needs a signed-in user")
            return
        if req.mode == "simulate_client" and "client_simulation" not in behaviours:
            yield ErrorEvent(code="bad_request", message=f"{persona.name} does not run client simulations")
            return
        if "requires_project" in behaviours and req.project_id is None:
            found = PROJECT_REF.search(req.text)
            if not found:
                yield ErrorEvent(code="project_required",
                                 message="tell me which project: give its id, e.g. 'project 42'")
                return
            self.req = req = req.model_copy(update={"project_id": int(found.group(1))})
        try:
            if req.mode == "simulate_client":
                yield from self.simulation_setup()
                if wants_feedback(req.text):
                    yield from self.retrieve("negotiation feedback scope price discovery questions")
            else:
                early = self.embed_early()
                yield from self.upfront()
                yield from self.retrieve(req.text, early)
            if "escalation" in behaviours:
                yield from self.escalate()
            messages: list[BaseMessage] = [SystemMessage(self.system_prompt())]
            messages += trim_history([h.model_dump() for h in req.history], persona.generation.history_tokens)
            messages.append(HumanMessage(req.text))
            yield from self.generate(messages)
            if "finalize_draft" in behaviours and self.finish != "cancelled":
                yield from self.finalize_draft()
        except LLMError as exc:
            yield ErrorEvent(code=exc.code, message=str(exc), retryable=exc.retryable)
            self.finish = "error"
        except MentorError as exc:
            yield ErrorEvent(code=exc.code, message=str(exc))
            self.finish = "error"
        yield DoneEvent(
            usage=Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                        total_tokens=self.prompt_tokens + self.completion_tokens,
                        counted="backend" if self.backend_counted and self.prompt_tokens else "tiktoken"),
            finish_reason=self.finish,
            provider=self.provider.name,
        )


def quotes_amount(text: str, amount: float) -> bool:
    """Does the text state this dollar amount (5440, 5,440, 5440.00 all count)?"""
    digits = {m.replace(",", "").split(".")[0] for m in re.findall(r"\$?\s?(\d[\d,]*(?:\.\d+)?)", text)}
    return str(int(round(amount))) in digits


def template_letter(project: dict, records: list[tuple[str, Any]], bid: dict) -> str:
    """A factual cover letter for when the model's draft is unusable (the tiny local model often is)."""
    profile = next((d for n, d in records if n == "my_profile" and "skills" in d), {})
    skills = ", ".join(s["name"] for s in profile.get("skills", [])[:3]) or ", ".join(project["skills"])
    unit = "per hour" if bid["bid_type"] == "hourly" else "for the full scope"
    proof = (f"I have {profile.get('years_experience', 'several')} years of experience with {skills}"
             + (f" and {profile['jobs_completed']} completed client projects" if profile.get("jobs_completed") else "")
             + (f" (average client rating {profile['rating']})" if profile.get("rating") else "") + ".")
    return (
        f"Hi {project['client']} team,\n\n"
        f"You're looking for help with \"{project['title']}\" — about {project['estimated_hours']} hours of "
        f"{', '.join(project['skills'])} work. My plan: 1) a short kick-off call to confirm goals and acceptance "
        f"criteria, 2) deliver in weekly increments you can review, 3) hand over with documentation.\n\n"
        f"{proof}\n\n"
        f"My bid is ${bid['amount']:,.0f} {unit}, based on about {bid['estimated_hours']} hours. "
        f"What does success look like for you three months after launch?"
    )


def run_turn(req: TurnRequest, *, db: Database, provider: ChatProvider,
             cancel: threading.Event | None = None) -> Iterator[Event]:
    """Run one turn and yield its events; never raises for bad input or a failing model."""
    try:
        persona = get_persona(req.persona)
    except MentorError as exc:
        yield ErrorEvent(code="unknown_persona", message=str(exc))
        return
    yield from _Turn(req, persona, db, provider, cancel).run()
