"""The grounded composer, the offline default: coherent answers from the evidence alone, per persona."""

from __future__ import annotations

import re

from agents.composer import COMPOSER
from agents.composer.roleplay import client_reply
from agents.evidence import Evidence
from agents.providers import get_provider
from agents.requests import TurnRequest
from agents.runtime import run_turn
from core.settings import Settings
from store.db import Database


def ask(db: Database, **kwargs) -> tuple[str, list]:
    events = list(run_turn(TurnRequest(**kwargs), db=db, provider=COMPOSER))
    return "".join(e.delta for e in events if e.type == "token"), events


def result(events: list, name: str) -> dict:
    return next(e.data for e in events if e.type == "tool_result" and e.name == name)


def assert_grounded(answer: str, events: list) -> None:
    done = events[-1]
    assert done.type == "done" and done.finish_reason == "stop" and done.provider == "grounded-composer"
    assert done.grounding.unsupported == [] and done.grounding.figures > 0
    cited = len([e for e in events if e.type == "citation"])
    assert all(1 <= int(n) <= cited for n in re.findall(r"\[(\d+)\]", answer))


def test_the_composer_is_the_offline_default() -> None:
    assert get_provider(Settings()) is COMPOSER
    assert get_provider(Settings(llm_backend="composer")) is COMPOSER


def test_david_places_the_stated_rate_among_the_percentiles(knowledge: Database, demo_ids) -> None:
    answer, events = ask(knowledge, persona="david", text="What should I charge for React work? I'm at $81/h now.",
                         user_id=demo_ids["mateo"])
    rates, advice = result(events, "market_rates"), result(events, "recommend_rate")
    assert advice["your_rate"] == 81 and advice["your_rate_source"] == "your message"
    for value in (rates["p25"], rates["p50"], rates["p75"], rates["p90"]):
        assert f"${value:,.0f}" in answer
    assert "$81/h" in answer and f"${advice['range_low']:,.0f}–${advice['range_high']:,.0f}/h" in answer
    assert advice["range_low"] >= rates["p25"] and advice["range_high"] <= rates["p90"]
    assert_grounded(answer, events)
    again, _ = ask(knowledge, persona="david", text="What should I charge for React work? I'm at $81/h now.",
                   user_id=demo_ids["mateo"])
    assert again == answer  # deterministic


def test_marcus_gives_the_records_then_next_steps_from_lessons(knowledge: Database, demo_ids) -> None:
    answer, events = ask(knowledge, persona="marcus", text="Is my learning paying off?", user_id=demo_ids["nora"])
    roi = result(events, "learning_roi")
    assert f"${roi['revenue_per_learning_hour']:,.2f} per learning hour" in answer
    steps = re.findall(r"(?m)^\d\. .+\[\d\]$", answer)
    assert "Next steps, from the lesson “" in answer and 2 <= len(steps) <= 4
    assert_grounded(answer, events)


def test_support_answers_the_callers_plan_first(knowledge: Database, demo_ids) -> None:
    answer, events = ask(knowledge, persona="support", text="What commission do I pay on my plan?",
                         user_id=demo_ids["mateo"])
    first = answer.split("\n\n")[0]
    assert "Plus plan" in first and "8%" in first and "60 proposals" in first
    assert "[" in answer  # then the help center, quoted with markers
    assert_grounded(answer, events)


def test_support_says_plainly_when_a_question_is_not_about_the_service(knowledge: Database) -> None:
    answer, events = ask(knowledge, persona="support", text="What's a good recipe for banana bread?")
    assert answer.startswith("I couldn't find anything about that in the help center: I can only help with")
    assert not any(e.type == "handoff" for e in events)  # no ticket: nobody at support should see this
    assert not re.search(r"\[\d\]", answer)  # nothing quoted from unrelated articles
    assert events[-1].grounding.unsupported == []


def test_support_offers_a_person_and_opens_a_ticket_when_the_offer_is_accepted(knowledge: Database) -> None:
    question = "Can I withdraw my balance in Bitcoin?"
    offer, events = ask(knowledge, persona="support", text=question)
    assert "ask for a person and I'll open a ticket" in offer and not any(e.type == "handoff" for e in events)
    history = [{"role": "user", "content": question}, {"role": "assistant", "content": offer}]
    answer, events = ask(knowledge, persona="support", text="Yes please", history=history)
    ticket = next(e for e in events if e.type == "handoff")
    assert ticket.reason == "no_answer" and f"#{ticket.ticket_id}" in answer
    _, events = ask(knowledge, persona="support", text="yes please")  # a yes to nothing offered is no request
    assert not any(e.type == "handoff" for e in events)
    _, events = ask(knowledge, persona="support", text="ok thanks", history=history)  # nor is a thank-you
    assert not any(e.type == "handoff" for e in events)


def test_support_says_so_when_the_question_names_what_the_help_center_never_mentions(knowledge: Database) -> None:
    # shares "payout", "withdraw", "balance" with the help center, which says nothing of Bitcoin or interest
    for question, word in (("Can I withdraw my balance in Bitcoin?", "Bitcoin"),
                           ("Do you pay interest on the money in my balance?", "interest")):
        answer, events = ask(knowledge, persona="support", text=question)
        assert answer.startswith(f"I couldn't find anything about “{word}” in the help center"), answer
        assert "The closest topic it covers is “" in answer and re.search(r"\[\d\]", answer)  # named as related
        assert "ask for a person" in answer  # a person is offered, not imposed
        assert not any(e.type == "handoff" for e in events)
        assert events[-1].grounding.unsupported == []


def test_support_answers_directly_when_the_help_center_uses_the_words(knowledge: Database) -> None:
    answer, _ = ask(knowledge, persona="support", text="How do I withdraw to PayPal?")
    assert not answer.startswith("I couldn't find") and "PayPal" in answer and "[1]" in answer


def test_mentors_advise_from_the_one_lesson_on_the_question(knowledge: Database, demo_ids) -> None:
    answer, _ = ask(knowledge, persona="sarah", user_id=demo_ids["mateo"],
                    text="A client keeps asking for extra changes for free. What do I say?")
    assert "From the lesson “Quoting Fixed-Price Projects”" in answer and "priced fairly" in answer
    assert "old rate" not in answer and "notice" not in answer  # the lesson on raising rates was retrieved too
    answer, _ = ask(knowledge, persona="marcus", user_id=demo_ids["nora"],
                    text="I have no clients yet. How do I get my first one?")
    assert "Next steps, from the lesson “Finding Your First Clients” (as you have no clients yet):" in answer
    assert "new rate" not in answer


def test_support_apologises_and_hands_over_when_upset(knowledge: Database, demo_ids) -> None:
    answer, events = ask(knowledge, persona="support", user_id=demo_ids["nora"],
                         text="This is RIDICULOUS, my withdrawal has been stuck for days!!!")
    ticket = next(e for e in events if e.type == "handoff")
    assert answer.startswith("I'm sorry") and f"ticket #{ticket.ticket_id}" in answer
    assert_grounded(answer, events)


def test_proposal_letter_is_saved_without_the_notes(knowledge: Database, demo_ids) -> None:
    answer, events = ask(knowledge, persona="proposal_writer", text="Write a proposal for project 1",
                         user_id=demo_ids["mateo"])
    bid, profile = result(events, "recommend_bid"), result(events, "my_profile")
    saved = next(e for e in events if e.type == "tool_call" and e.name == "save_proposal_draft").args
    letter, notes = answer.split("**Why this bid**")
    assert saved["cover_letter"] == letter.strip() and "Why this bid" not in saved["cover_letter"]
    assert saved["rationale"]["cover_letter_source"] == "model"  # the composer's letter states the bid
    assert f"${bid['amount']:,.0f} per hour" in letter and profile["name"] in letter
    assert "Client budget" in notes and all(line in notes for line in bid["reasoning"])
    assert_grounded(answer, events)
    short, _ = ask(knowledge, persona="proposal_writer", text="Make it shorter, project 1", user_id=demo_ids["mateo"])
    assert len(short.split("**Why this bid**")[0]) < len(letter)
    with knowledge.admin() as conn:
        conn.execute("DELETE FROM proposals WHERE status = 'draft' AND freelancer_id = %s", (demo_ids["mateo"],))


def test_sarah_quotes_lessons(knowledge: Database, demo_ids) -> None:
    answer, events = ask(knowledge, persona="sarah", text="How do I handle a client who keeps asking for more work?",
                         user_id=demo_ids["sofia"])
    assert len(re.findall(r"\[\d\]", answer)) >= 2
    assert events[-1].grounding.unsupported == []


def _brief_evidence(project: dict, question: str, history: list | None = None) -> Evidence:
    from agents.simulation import client_brief

    brief = client_brief(project, {"p50": 50}).model_dump()
    return Evidence(persona="sarah", question=question, history=history or [],
                    records=[("get_project", project), ("client_brief", brief)], mode="simulate_client")


PROJECT = {"id": 9, "title": "Shop redesign", "client": "Acme", "industry": "Retail", "company_size": "small",
           "project_type": "fixed", "budget_min": 4000, "budget_max": 5000, "estimated_hours": 60,
           "complexity": "medium", "skills": ["Figma"], "description": "Retail company looking for a expert Figma "
           "freelancer. Scope is about 60 hours of work (fixed price). Skills: Figma. Budget is firm."}


def test_the_simulated_client_reacts_to_the_price_against_its_budget() -> None:
    assert client_reply(_brief_evidence(PROJECT, "I can do it for $4,800.")).startswith("$4,800 works for us")
    counter = client_reply(_brief_evidence(PROJECT, "My price is $5,300."))
    assert "Could you do it for $5,000?" in counter  # within its hidden 10%, no reason given: counter at the top
    accept = client_reply(_brief_evidence(PROJECT, "My price is $5,300 because a faster checkout raises revenue."))
    assert "Let's go ahead at $5,300" in accept  # value explained: up to its hidden maximum
    push = client_reply(_brief_evidence(PROJECT, "It will be $9,000."))
    assert "well above our budget of $4,000-$5,000" in push and "scope" in push
    opening = client_reply(_brief_evidence(PROJECT, "Hello!"))
    assert "what would it cost us?" in opening
    assert "$5,500" not in " ".join([counter, accept, push])  # never reveals its hidden maximum


def test_feedback_scores_the_freelancers_messages_against_the_checklist(knowledge: Database, demo_ids) -> None:
    history = [{"role": "user", "content": "Hi! What are you hoping to achieve with the launch?"},
               {"role": "assistant", "content": "More sign-ups."},
               {"role": "user", "content": "I can do it for $6,000."},
               {"role": "assistant", "content": "Too much."},
               {"role": "user", "content": "OK, $4,500 then."}]
    answer, events = ask(knowledge, persona="sarah", text="Can you give me feedback on how I negotiated?",
                         user_id=demo_ids["mateo"], project_id=67, mode="simulate_client", history=history)
    assert "✓ Asked about the client's goals" in answer
    assert "✗ Traded scope instead of cutting the rate — you lowered the price without changing scope" in answer
    assert "✗ Ended with a clear next step" in answer
    budget = result(events, "get_project")
    assert f"${budget['budget_min']:,.0f}-${budget['budget_max']:,.0f}" in answer
    assert events[-1].grounding.unsupported == []
