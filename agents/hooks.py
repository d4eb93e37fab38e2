"""Per-persona behaviour as lifecycle hooks, chosen by name in the persona's registry entry.

The turn runtime only runs phases (start → gather evidence → after gather → model → after answer);
what a persona does differently happens here, at fixed points, the way openai-agents-python's
`AgentHooks` work. A new persona picks hooks by name (`behaviours: [escalation]`); a new kind of
behaviour is a new class registered in `HOOKS`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator
from typing import Any, ClassVar, Protocol

from agents.answerability import accepts_offer
from agents.events import Event
from agents.evidence import Evidence
from agents.requests import TurnRequest
from agents.sentiment import is_upset, wants_human
from agents.simulation import client_brief, wants_feedback
from agents.tools import ToolOutcome
from core.errors import MentorError
from retrieval.search import SearchHit


class PromptFiles(Protocol):
    def read_prompt(self, name: str) -> str: ...


class TurnState(Protocol):
    """What a hook sees of a turn, and may do in it: read the request and the evidence gathered so far (and
    the answer, after it); set the request's project (`RequiresProject`); add a record; run tools and
    retrieval through the turn, as the caller and as events. Nothing else of the runtime's state."""

    req: TurnRequest
    persona: PromptFiles
    records: list[tuple[str, Any]]
    hits: list[SearchHit]
    answer: str
    finish: str
    saved_draft: bool

    def call_tool(self, name: str, args: dict[str, Any], call_id: str | None = None,
                  allowed: list[str] | None = None, refused: str | None = None
                  ) -> Generator[Event, None, ToolOutcome]: ...

    def retrieve(self, query: str, vector: Any = None) -> Generator[Any, Any, None]: ...

    def evidence(self) -> Evidence: ...

    def with_evidence(self, prompt: str) -> str: ...

PROJECT_REF = re.compile(r"(?:project\s*(?:id\s*)?#?|#)(\d{1,9})\b", re.I)


class TurnRefused(MentorError):
    """A turn that cannot start (missing project, wrong mode); ends as a typed error, then `done`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TurnHooks:
    """No-op defaults; a hook overrides only the points it cares about."""

    name: ClassVar[str] = ""

    def on_start(self, turn: TurnState) -> None:
        """Check or complete the request; raise TurnRefused to end the turn with a typed error."""

    def gathers(self, turn: TurnState) -> bool:
        """True to replace the default evidence gathering (up-front tools + retrieval) with `gather`."""
        return False

    def gather(self, turn: TurnState) -> Iterator[Event]:
        yield from ()

    def after_gather(self, turn: TurnState) -> Iterator[Event]:
        yield from ()

    def system_prompt(self, turn: TurnState, prompt: str) -> str:
        return prompt

    def offers_tools(self, turn: TurnState) -> bool:
        return True

    def composer(self, turn: TurnState) -> str | None:
        """The grounded composer's structure for this turn, when it differs from the persona's own."""
        return None

    def after_answer(self, turn: TurnState) -> Iterator[Event]:
        yield from ()


class RequiresProject(TurnHooks):
    name = "requires_project"

    def on_start(self, turn: TurnState) -> None:
        if turn.req.project_id is not None:
            return
        found = PROJECT_REF.search(turn.req.text)
        if not found:
            raise TurnRefused("project_required", "tell me which project: give its id, e.g. 'project 42'")
        turn.req = turn.req.model_copy(update={"project_id": int(found.group(1))})


class ClientSimulation(TurnHooks):
    """Sarah plays the client of a real project (`mode: simulate_client`); "feedback" steps out of role."""

    name = "client_simulation"

    @staticmethod
    def active(turn: TurnState) -> bool:
        return turn.req.mode == "simulate_client"

    def on_start(self, turn: TurnState) -> None:
        if self.active(turn) and turn.req.project_id is None:
            raise TurnRefused("project_required", "client simulation needs a project: pass its id")

    def gathers(self, turn: TurnState) -> bool:
        return self.active(turn)

    def gather(self, turn: TurnState) -> Iterator[Event]:
        project = yield from turn.call_tool("get_project", {"project_id": turn.req.project_id})
        if project.error is not None:
            raise TurnRefused("not_found", project.error)
        rates = yield from turn.call_tool("market_rates", {"skill": project.data["skills"][0],
                                                            "segment": project.data["experience_level"]})
        brief = client_brief(project.data, rates.data)
        turn.records.append(("client_brief", brief.model_dump()))
        if wants_feedback(turn.req.text):
            yield from turn.retrieve("negotiation feedback scope price discovery questions next step")

    def system_prompt(self, turn: TurnState, prompt: str) -> str:
        if not self.active(turn):
            return prompt
        if wants_feedback(turn.req.text):
            return turn.with_evidence(turn.persona.read_prompt("sarah_feedback.md"))
        # in role: no records or sources, the client knows only its own brief
        brief = turn.evidence().record("client_brief")
        return turn.persona.read_prompt("sarah_client.md") + "\n\n## The client you play\n" + json.dumps(brief)

    def offers_tools(self, turn: TurnState) -> bool:
        return not self.active(turn)

    def composer(self, turn: TurnState) -> str | None:
        if not self.active(turn):
            return None
        return "negotiation_feedback" if wants_feedback(turn.req.text) else "client"


class Escalation(TurnHooks):
    """Support hands over to a person (agents/answerability.py has the policy): when asked, when the user is
    upset, or when they accept the offer of one for a question the help center does not answer."""

    name = "escalation"

    def after_gather(self, turn: TurnState) -> Iterator[Event]:
        text = turn.req.text
        reason = None
        if wants_human(text):
            reason = "user_request"
        elif is_upset(text):
            reason = "upset"
        elif accepts_offer(text, [m.model_dump() for m in turn.req.history]):
            reason = "no_answer"  # unanswered, and the customer accepted a person
        if reason is None:
            return
        yield from turn.call_tool("create_support_ticket", {"reason": reason})  # its handoff event comes with it


class FinalizeDraft(TurnHooks):
    """The proposal writer always leaves a saved draft: the model's letter if it states the bid, else the template."""

    name = "finalize_draft"

    def after_answer(self, turn: TurnState) -> Iterator[Event]:
        from agents.composer.proposal import DRAFT_NOTES, template_letter

        if turn.saved_draft or turn.req.user_id is None or turn.finish == "cancelled":
            return
        evidence = turn.evidence()
        bid, project = evidence.record("recommend_bid"), evidence.record("get_project")
        if not bid or not project or "amount" not in bid:
            return
        letter = turn.answer.split(DRAFT_NOTES, 1)[0].strip()
        source = "model"
        if len(letter) < 80 or not quotes_amount(letter, bid["amount"]):
            # A letter that never states the recommended bid is not a usable proposal (a small local
            # model often rambles); the factual template carries the bid, the plan and the proof.
            letter, source = template_letter(evidence), "template"
        yield from turn.call_tool("save_proposal_draft", {
            "project_id": project["id"], "cover_letter": letter, "bid_amount": bid["amount"],
            "bid_type": bid["bid_type"], "estimated_hours": bid["estimated_hours"],
            "rationale": {"reasoning": bid["reasoning"], "percentiles": bid["percentiles"],
                          "range": [bid["range_low"], bid["range_high"]], "cover_letter_source": source},
        })


def quotes_amount(text: str, amount: float) -> bool:
    """Does the text state this dollar amount (5440, 5,440, 5440.00 all count)?"""
    digits = {m.replace(",", "").split(".")[0] for m in re.findall(r"\$?\s?(\d[\d,]*(?:\.\d+)?)", text)}
    return str(int(round(amount))) in digits


HOOKS: dict[str, type[TurnHooks]] = {h.name: h for h in (RequiresProject, ClientSimulation, Escalation, FinalizeDraft)}


def hooks_for(names: list[str]) -> list[TurnHooks]:
    return [HOOKS[name]() for name in names]
