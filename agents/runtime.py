"""One turn, as a stream of typed events.

Phases: start (persona hooks check the request) → gather evidence (up-front tools and retrieval, each
as events the moment it happens) → after gather (e.g. escalation) → the answer (a model, streaming;
with native tool calling it may call the persona's tools in a bounded loop, each run as the caller;
or the grounded composer, which writes from the evidence alone) → after answer (e.g. save the
proposal draft) → `done` with usage and the grounding check of the answer.

A turn runs on the event loop (`arun_turn`): the model's stream is read natively (async), while the
synchronous phases — hooks, tools, retrieval, the composer — run on one bounded thread pool
(`agents/aio.py`), so a burst of turns costs no thread per turn. `run_turn` drives the same turn from
synchronous code (CLI, evals).

Per-persona behaviour lives in hooks (`agents/hooks.py`) chosen by the registry, not here. The tool
loop is ours rather than LangChain's agent executor because every call must run under the caller's
identity, be bounded, and surface as events the server persists; LangChain supplies the chat models,
message types, tool schemas, streaming and history trimming.

Grounding (`MENTOR_GROUNDING`, else the persona's `grounding`): `flag` streams the answer and reports
unsupported figures in `done`; `strict` releases the answer sentence by sentence once its figures are
found in the evidence, and on the first that is not, stops the model and streams the composer's
answer instead, announced by an `answer_replaced` event.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from agents.aio import Wait, drive, iterate_blocking, iterate_in_pool, run_blocking
from agents.composer import COMPOSER, GroundedComposer
from agents.context import count_message_tokens, records_block, sources_block, trim_history
from agents.events import (
    AnswerReplacedEvent,
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
from agents.evidence import Evidence, Handoff
from agents.grounding import EvidenceIndex, Grounding, StrictGate, check
from agents.hooks import TurnHooks, TurnRefused, hooks_for
from agents.llm import ChatProvider, LLMError, ModelReply, ToolCallRequest
from agents.personas import Persona, get_persona
from agents.requests import TurnRequest
from agents.sampling import OutputLimit, Sampling
from agents.tools import TOOLS, ToolContext, ToolOutcome, detect_skill, run_tool
from core.errors import MentorError
from retrieval.coverage import missing_words
from retrieval.embedder import get_embedder
from retrieval.search import SearchHit, balanced, search
from retrieval.tokens import count_tokens
from store.db import Database

log = logging.getLogger("mentor.turn")
STATED_RATE = re.compile(r"\$\s?(\d{1,4}(?:\.\d{1,2})?)\s*(?:/\s*h(?:ou)?r?\b|(?:an|per|a)\s+hour\b|hourly\b)", re.I)


def strictly_grounded(persona: Persona, grounding: str | None, provider: ChatProvider) -> bool:
    """Is this answer released only once its figures are checked (and replaced if one is not)? The composer
    quotes its evidence, so it needs no gate."""
    return (grounding or persona.grounding) == "strict" and not isinstance(provider, GroundedComposer)


@dataclass
class ModelStep:
    """One model call of a turn: its reply (tool calls, usage), all it produced, what was released."""

    reply: ModelReply = field(default_factory=ModelReply)
    produced: str = ""
    released: str = ""


class Turn:
    def __init__(self, req: TurnRequest, persona: Persona, db: Database, provider: ChatProvider,
                 cancel: threading.Event | None, grounding: str | None,
                 on_prepared: Callable[[], None] | None = None) -> None:
        self.req, self.persona, self.db, self.provider = req, persona, db, provider
        self.on_prepared = on_prepared  # told once everything before the answer is done (or failed)
        self.cancel = cancel or threading.Event()
        self.hooks: list[TurnHooks] = hooks_for(persona.behaviours)
        self.strict = strictly_grounded(persona, grounding, provider)
        transcript = "\n".join(f"{h.role}: {h.content}" for h in req.history) + f"\nuser: {req.text}"
        self.ctx = ToolContext(db=db, user_id=req.user_id, allowed_corpora=persona.corpora,
                               transcript=transcript.strip(), conversation_id=req.conversation_id,
                               question=req.text, visitor_ticket_limits=req.visitor_ticket_limits)
        self.records: list[tuple[str, Any]] = []  # what the prompt shows, tool errors included
        self.hits: list[SearchHit] = []
        self.handoff: Handoff | None = None
        self.ticket_refused: str | None = None
        self.system_text = ""
        self.question_vector: np.ndarray | None = None
        self.missing_words: list[str] = []  # the question's subject words no searched document contains
        self.answer = ""
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.completion_tokens = 0
        self.backend_counted = True
        self.saved_draft = False
        self.citation_ids: set[int] = set()
        self.finish = "stop"
        self._index: EvidenceIndex | None = None
        self._index_seen: tuple[int, int] = (-1, -1)

    # -- evidence -----------------------------------------------------------------------------
    def call_tool(self, name: str, args: dict[str, Any], call_id: str | None = None,
                  allowed: list[str] | None = None, refused: str | None = None) -> Generator[Event, None, ToolOutcome]:
        """Run a tool as the caller, emit the call and its result, and return the outcome.

        `refused` = report this error instead of running (e.g. the model's arguments were malformed).
        """
        call_id = call_id or f"call_{uuid.uuid4().hex[:12]}"
        yield ToolCallEvent(id=call_id, name=name, args=args)
        outcome = ToolOutcome(name, error=refused) if refused else run_tool(name, args, self.ctx, allowed=allowed)
        yield ToolResultEvent(id=call_id, name=name, args=args, data=outcome.data, error=outcome.error)
        self.records.append((name, outcome.data if outcome.error is None else {"error": outcome.error}))
        if name == "save_proposal_draft" and outcome.error is None:
            self.saved_draft = True
        if name == "create_support_ticket" and outcome.error is not None:
            self.ticket_refused = outcome.error  # worded for the customer (agents/tools.py): the answer says it
        if name == "create_support_ticket" and outcome.error is None:
            # every ticket is a handoff, whoever opened it (a hook, the model): the client follows the
            # conversation for a person's replies from this event on
            data = outcome.data
            self.handoff = Handoff(ticket_id=data["ticket_id"], reason=data["reason"],
                                   already_open=bool(data.get("already_open")),
                                   elsewhere=bool(data.get("in_another_conversation")))
            if not self.handoff.already_open:  # asking again adds to the open ticket: no second one to show
                yield HandoffEvent(ticket_id=data["ticket_id"], reason=data["reason"])
        if name == "search_knowledge" and outcome.data:
            yield from self.cite([SearchHit(corpus="", anchor="", score=0, **{k: r[k] for k in (
                "chunk_id", "title", "section", "source", "text")}) for r in outcome.data["results"]])
        return outcome

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
        stated = STATED_RATE.search(self.req.text)
        return {"$skill": detect_skill(self.db, self.req.text), "$project_id": self.req.project_id,
                "$stated_rate": float(stated.group(1)) if stated else None}

    def upfront(self) -> Iterator[Event]:
        variables = self.variables()
        for call in self.persona.upfront:
            tool = TOOLS[call.tool]
            if (tool.private and self.req.user_id is None) or not call.applies(self.req.text):
                continue
            args = {}
            for key, value in call.args.items():
                resolved = variables.get(value, value) if isinstance(value, str) else value
                if resolved is not None:
                    args[key] = resolved
            yield from self.call_tool(call.tool, args)

    def embed_early(self) -> Future[np.ndarray] | None:
        """Start embedding the question now; torch runs it (batched with other turns' questions) while the
        up-front tools wait on the database."""
        if not self.persona.corpora or not self.persona.retrieval_k:
            return None
        return get_embedder().submit_query(self.req.text)

    def retrieve(self, query: str, vector: Future[np.ndarray] | None = None) -> Generator[Any, Any, None]:
        if not self.persona.corpora or not self.persona.retrieval_k:
            return
        # the embedding is awaited on the event loop (`Wait`), not by a pool thread blocking on it
        embedded = yield Wait(vector or get_embedder().submit_query(query))
        if query == self.req.text:
            self.question_vector = embedded  # the composer scores its quotes against the same vector
        # each corpus searched on its own, then taken in turn: market data cannot crowd out the lessons
        k = self.persona.retrieval_k
        hits = [hit for corpus in self.persona.corpora
                for hit in search(self.db, query, corpora=[corpus], k=k, metadata=self.persona.retrieval_filter,
                                  vector=embedded)]
        if query == self.req.text:
            self.missing_words = missing_words(self.db, self.persona.corpora, query)
        yield from self.cite(balanced(hits, k))

    def gather(self) -> Iterator[Event]:
        early = self.embed_early()
        yield from self.upfront()
        yield from self.retrieve(self.req.text, early)

    def with_evidence(self, prompt: str) -> str:
        """A system prompt followed by the records and the numbered sources."""
        missing = (f"No source mentions: {', '.join(self.missing_words)}. If the question is about these, say the "
                   "sources don't cover it rather than answering from nearby text.") if self.missing_words else ""
        return "\n\n".join(p for p in (prompt, records_block(self.records), sources_block(self.hits), missing) if p)

    def evidence(self) -> Evidence:
        return Evidence(
            persona=self.persona.id, question=self.req.text, history=[h.model_dump() for h in self.req.history],
            records=[(n, d) for n, d in self.records if not (isinstance(d, dict) and set(d) == {"error"})],
            hits=list(self.hits), handoff=self.handoff, signed_in=self.req.user_id is not None, mode=self.req.mode,
            system_prompt=self.system_text, question_vector=self.question_vector, missing_words=self.missing_words,
            ticket_refused=self.ticket_refused)

    def evidence_index(self) -> EvidenceIndex:
        """The evidence's figures, rebuilt only when a tool call mid-answer added evidence."""
        seen = (len(self.records), len(self.hits))
        if self._index is None or seen != self._index_seen:
            self._index, self._index_seen = self.evidence().index(), seen
        return self._index

    def structure(self) -> str:
        """Which of the composer's per-persona structures writes this turn's answer."""
        return next((name for h in self.hooks if (name := h.composer(self))), None) or self.persona.composer

    # -- the answer ---------------------------------------------------------------------------
    def model_stream(self, messages: list[BaseMessage], tools: list[dict] | None) -> AsyncIterator[str | ModelReply]:
        gen, sampling = self.persona.generation, self.req.sampling or Sampling()
        if isinstance(self.provider, GroundedComposer):  # no model: the composer writes from the evidence
            return self.composed(self.provider)
        options: dict[str, Any] = dict(
            tools=tools, cancel=self.cancel,
            temperature=gen.temperature if sampling.temperature is None else sampling.temperature,
            max_tokens=sampling.max_tokens or gen.max_tokens)
        if extra := sampling.model_options():
            options["options"] = extra
        if not hasattr(self.provider, "astream"):  # a provider written against the synchronous interface only
            return iterate_in_pool(self.provider.stream(messages, **options))
        return self.provider.astream(messages, **options)

    @property
    def composes(self) -> bool:
        return isinstance(self.provider, GroundedComposer)

    async def composed(self, provider: GroundedComposer) -> AsyncIterator[str | ModelReply]:
        """The composer's answer: written on the blocking pool (it scores quotes with MiniLM), then streamed."""
        pieces = await run_blocking(lambda: list(provider.compose(self.evidence(), self.structure(),
                                                                  cancel=self.cancel)))
        for piece in pieces:
            yield piece

    def offered_tools(self) -> list[dict] | None:
        """The persona's tools as the model sees them (none a visitor may not use; none when a hook says so)."""
        if not self.provider.supports_tools or not all(h.offers_tools(self) for h in self.hooks):
            return None
        return [TOOLS[t].openai_schema() for t in self.persona.tools
                if not (TOOLS[t].private and self.req.user_id is None)] or None

    def release(self, text: str) -> TokenEvent:
        self.answer += text
        return TokenEvent(delta=text)

    async def generate(self, messages: list[BaseMessage]) -> AsyncIterator[Event]:
        """Model rounds until the answer ends: each streams (checked by the strict gate, cut by the caller's
        limits), then runs the tool calls it asked for, up to the persona's `max_tool_steps`."""
        tools = self.offered_tools()
        gate = StrictGate(self.evidence_index) if self.strict else None
        limit = OutputLimit.of(self.req.sampling)
        for steps in itertools.count():
            step = ModelStep()
            async for event in self.stream_step(messages, tools, gate, limit, step):
                yield event
            reply = step.reply
            if gate and not gate.failed and not reply.tool_calls and (rest := gate.flush()) \
                    and (rest := limit.feed(rest) if limit else rest):
                yield self.release(rest)
            if gate and gate.failed:
                async for event in self.replace_answer(gate.unsupported):
                    yield event
                return
            if self.cancel.is_set():
                self.finish = "cancelled"
                return
            if limit and not reply.tool_calls and (rest := limit.flush()):
                yield self.release(rest)
            if limit and limit.ended:
                self.finish = limit.reason or "stop"
                return
            if reply.finish_reason == "length":
                self.finish = "length"
            if not reply.tool_calls:
                return
            if steps >= self.persona.generation.max_tool_steps:
                self.finish = "tool_steps"
                return
            async for event in self.run_tool_calls(messages, reply):
                yield event

    async def stream_step(self, messages: list[BaseMessage], tools: list[dict] | None, gate: StrictGate | None,
                          limit: OutputLimit | None, step: ModelStep) -> AsyncIterator[Event]:
        """One model call, streamed: what it releases is what the gate passed and the limits kept."""
        stream = self.model_stream(messages, tools)
        try:
            async for piece in stream:
                if not isinstance(piece, str):
                    step.reply = piece
                    continue
                step.produced += piece
                released = gate.feed(piece) if gate else piece
                if gate and gate.failed:
                    break
                if limit:
                    released = limit.feed(released)
                if released:
                    step.released += released
                    yield self.release(released)
                if self.cancel.is_set() or (limit and limit.ended and not self.composes):
                    break  # (the composer's answer is written already: read on to its usage)
        except LLMError:  # what was streamed before the failure was generated, and is kept: count it
            self.count_usage(messages, ModelReply(), step.produced)
            raise
        finally:
            await stream.aclose()  # stops a model we broke away from (strict mode, cancel, a limit)
        # what was produced: all the model sent, unless a limit cut the answer here (then what was released,
        # so completion_tokens never exceeds the caller's max_tokens); the composer's, as released
        cut = self.composes or (limit is not None and limit.ended)
        self.count_usage(messages, step.reply, step.released if cut else step.produced)

    async def run_tool_calls(self, messages: list[BaseMessage], reply: ModelReply) -> AsyncIterator[Event]:
        """The round's tool calls (repeats once, at most `max_tool_calls`), each as the caller; the model is
        told what it asked for and each result."""
        calls = distinct_calls(reply.tool_calls)[:self.persona.generation.max_tool_calls]
        messages.append(AIMessage(content=reply.text, tool_calls=[
            {"id": c.id, "name": c.name, "args": c.args} for c in calls]))
        for call in calls:
            # malformed arguments: tell the model, and the user, instead of guessing them
            refused = None if call.malformed is None else \
                f"the model sent malformed arguments for {call.name}: {call.malformed[:200]!r}"
            returned: list[ToolOutcome] = []
            async for event in drive(self.call_tool(call.name, call.args, call_id=call.id,
                                                    allowed=self.persona.tools, refused=refused), returned):
                yield event
            outcome = returned[0]
            content = json.dumps(outcome.data if outcome.error is None else {"error": outcome.error}, default=str)
            messages.append(ToolMessage(content=content[:6000], tool_call_id=call.id))

    async def replace_answer(self, unsupported: list[str]) -> AsyncIterator[Event]:
        """Strict mode: the model stated figures the evidence does not hold; the composer answers instead."""
        yield AnswerReplacedEvent(unsupported=unsupported, by=COMPOSER.name)
        self.answer = ""
        limit = OutputLimit.of(self.req.sampling)  # the replacement keeps the caller's limits afresh
        async for piece in self.composed(COMPOSER):
            if isinstance(piece, str) and (piece := limit.feed(piece) if limit else piece):
                yield self.release(piece)
        if limit and (rest := limit.flush()):
            yield self.release(rest)
        # completion tokens: the model's withdrawn text (it was generated) and the replacement (it was sent)
        self.completion_tokens += count_tokens(self.answer)
        self.backend_counted = False
        if limit and limit.ended:
            self.finish = limit.reason or "stop"

    def count_usage(self, messages: list[BaseMessage], reply: ModelReply, produced: str) -> None:
        """Add this model call's tokens: the backend's counts, else tiktoken over what was sent and produced
        (the composer's answer as released, after any limit cut it)."""
        if reply.prompt_tokens is None or reply.completion_tokens is None:
            self.backend_counted = False
        self.prompt_tokens += count_message_tokens(messages) if reply.prompt_tokens is None else reply.prompt_tokens
        self.cached_tokens += reply.cached_tokens if reply.prompt_tokens is not None else 0
        self.completion_tokens += count_tokens(produced) if reply.completion_tokens is None \
            else reply.completion_tokens

    def grounding(self) -> Grounding:
        return check(self.answer, lambda: self.evidence().index())

    def prepare(self) -> Generator[Event, None, list[BaseMessage]]:
        """Everything before the answer (synchronous: checks, tools, retrieval); returns the model's messages."""
        req, persona = self.req, self.persona
        if req.user_id is None and not persona.anonymous:
            raise TurnRefused("sign_in_required", f"{persona.name} needs a signed-in user")
        if req.mode == "simulate_client" and "client_simulation" not in persona.behaviours:
            raise TurnRefused("bad_request", f"{persona.name} does not run client simulations")
        for hook in self.hooks:
            hook.on_start(self)
        gatherer = next((h for h in self.hooks if h.gathers(self)), None)
        yield from (gatherer.gather(self) if gatherer else self.gather())
        for hook in self.hooks:
            yield from hook.after_gather(self)
        self.system_text = self.with_evidence(persona.system_prompt())
        for hook in self.hooks:
            self.system_text = hook.system_prompt(self, self.system_text)
        if req.instructions:  # below the persona's rules: they still hold where the two disagree
            self.system_text += ("\n\n## Instructions from the application calling you\nFollow these where they do "
                                 "not conflict with everything above.\n" + req.instructions)
        messages: list[BaseMessage] = [SystemMessage(self.system_text)]
        messages += trim_history([h.model_dump() for h in self.req.history], persona.generation.history_tokens)
        messages.append(HumanMessage(self.req.text))
        return messages

    def after_answer(self) -> Iterator[Event]:
        for hook in self.hooks:
            yield from hook.after_answer(self)

    async def run(self) -> AsyncIterator[Event]:
        """The turn on the event loop: synchronous phases on the bounded pool, the model streamed natively."""
        try:
            returned: list[list[BaseMessage]] = []
            try:
                async for event in drive(self.prepare(), returned):
                    yield event
            finally:
                if self.on_prepared is not None:
                    self.on_prepared()
            async for event in self.generate(returned[0]):
                yield event
            async for event in drive(self.after_answer(), []):
                yield event
        except LLMError as exc:  # the user reads the message; the operator's detail goes to the log
            log.warning("model call failed", extra={"conversation_id": self.req.conversation_id,
                                                    "persona": self.persona.id, "detail": exc.detail})
            yield ErrorEvent(code=exc.code, message=str(exc), retryable=exc.retryable)
            self.finish = "error"
        except MentorError as exc:  # refused turns and typed failures end like any other: error, then done
            yield ErrorEvent(code=exc.code, message=str(exc))
            self.finish = "error"
        yield DoneEvent(
            usage=Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                        total_tokens=self.prompt_tokens + self.completion_tokens, cached_tokens=self.cached_tokens,
                        counted="backend" if self.backend_counted and self.prompt_tokens else "tiktoken"),
            finish_reason=self.finish,
            provider=self.provider.name,
            grounding=await run_blocking(self.grounding),
        )


def distinct_calls(calls: list[ToolCallRequest]) -> list[ToolCallRequest]:
    """The round's calls with repeats removed (same tool, same arguments: one answer serves them all)."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for call in calls:
        key = (call.name, call.malformed or json.dumps(call.args, sort_keys=True, default=str))
        if key not in seen:
            seen.add(key)
            kept.append(call)
    return kept


async def arun_turn(req: TurnRequest, *, db: Database, provider: ChatProvider,
                    cancel: threading.Event | None = None, grounding: str | None = None,
                    on_prepared: Callable[[], None] | None = None) -> AsyncIterator[Event]:
    """Run one turn and yield its events, always ending with `done`; never raises for bad input or a failing model.

    `grounding` ("flag" or "strict") overrides the persona's own setting (MENTOR_GROUNDING).
    `on_prepared()` runs when the evidence is gathered, before the model is asked (the server's setup slot).
    """
    try:
        persona = get_persona(req.persona)
    except MentorError as exc:
        yield ErrorEvent(code="unknown_persona", message=str(exc))
        yield DoneEvent(usage=Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0), finish_reason="error",
                        provider=provider.name)
        return
    if grounding is None:
        from core.settings import get_settings

        grounding = get_settings().grounding
    async for event in Turn(req, persona, db, provider, cancel, grounding, on_prepared).run():
        yield event


def run_turn(req: TurnRequest, *, db: Database, provider: ChatProvider, cancel: threading.Event | None = None,
             grounding: str | None = None) -> Iterator[Event]:
    """`arun_turn` for synchronous callers (the CLI, evals), on a private event loop."""
    return iterate_blocking(arun_turn(req, db=db, provider=provider, cancel=cancel, grounding=grounding))
