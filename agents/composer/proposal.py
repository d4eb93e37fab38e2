"""The proposal writer's letter: the project's own requirements, the caller's matching skills and proof,
and the computed bid; then notes for the freelancer on why this bid (never part of the saved letter)."""

from __future__ import annotations

import re

from agents.composer.facts import join, money, number
from agents.composer.passages import actionable, pick, rank, split_sentences
from agents.evidence import Evidence

SHORTER = re.compile(r"\b(short|shorter|brief|briefer|concise|tighter|fewer words)\b", re.I)
_BOILERPLATE = re.compile(r"\blooking for an? (entry|intermediate|expert) ", re.I)

DRAFT_NOTES = "**Why this bid**"  # the notes for the freelancer start here; never saved as the letter


def _requirements(project: dict) -> list[str]:
    """The description's sentences that ask for something (scope, deliverables, what to share)."""
    sentences = split_sentences(project.get("description") or "")
    return [s for s in sentences if not _BOILERPLATE.search(s)][:3]


def _skills(ev: Evidence, profile: dict, project: dict) -> list[str]:
    """The caller's skills that the project needs, plus any the user asked to mention."""
    mine = profile.get("skills") or []
    wanted = {s.lower() for s in project.get("skills") or []}
    asked = [s for s in mine if re.search(rf"(?<!\w){re.escape(s['name'])}(?!\w)", ev.question, re.I)]
    matching = [s for s in mine if s["name"].lower() in wanted]
    chosen = list({s["name"]: s for s in [*asked, *matching]}.values())[:3]
    return [s["name"] for s in chosen]


def template_letter(ev: Evidence, *, short: bool = False) -> str:
    project, bid = ev.record("get_project"), ev.record("recommend_bid")
    profile = ev.record("my_profile") or {}
    skills = _skills(ev, profile, project) or list(project.get("skills") or [])
    unit = "per hour" if bid["bid_type"] == "hourly" else "for the full scope"
    years = f"{number(profile['years_experience'])} years of experience with " if profile.get("years_experience") \
        else "experience with "
    proof = [f"{years}{join(skills)}"]
    if profile.get("jobs_completed"):
        proof.append(f"{number(profile['jobs_completed'])} completed projects on this platform")
    if profile.get("rating"):
        proof.append(f"an average client rating of {number(profile['rating'])}")
    fit = f"I bring {join(proof)}."
    bid_line = (f"My bid is {money(bid['amount'])} {unit}, based on about {number(bid['estimated_hours'])} hours "
                "of work.")
    greeting = f"Hi {project.get('client') or 'there'} team,"
    sign = f"Best regards,\n{profile['name']}" if profile.get("name") else "Best regards"
    if short:
        return "\n\n".join([greeting, f"I'd like to help with \"{project['title']}\". {fit}", bid_line,
                            "Could we have a short call this week to confirm the scope?", sign])
    asks = _requirements(project)
    need = f"You're looking for help with \"{project['title']}\"." + (" " + " ".join(asks) if asks else "")
    milestones = project.get("milestones") or []
    if milestones:
        plan = ("I'll deliver in the milestones you set out — " + "; ".join(
            f"{m['title']} ({money(m['amount'])})" for m in milestones[:4]) + " — each reviewed with you before "
                "the next starts.")
    else:
        plan = ("My plan: a short kick-off call to confirm goals and acceptance criteria, delivery in weekly "
                "increments you can review, and a handover with documentation.")
    return "\n\n".join([greeting, need, fit, plan, bid_line,
                        "What does success look like for you three months after launch?", sign])


def proposal(ev: Evidence) -> str:
    """The letter, then the bid's reasoning for the freelancer."""
    project, bid = ev.record("get_project"), ev.record("recommend_bid")
    if not project or not bid or "amount" not in bid:
        return ("I couldn't load that project and a recommended bid for it, so I can't write the proposal yet. "
                "Check the project id and try again.")
    letter = template_letter(ev, short=bool(SHORTER.search(ev.question)))
    unit = "/h" if project.get("project_type") == "hourly" else " total"
    notes = [f"- Client budget: {money(project['budget_min'])}–{money(project['budget_max'])}{unit}."]
    notes += [f"- {line}" for line in bid.get("reasoning") or []]
    if ev.hits:  # one tip from the proposal lessons, with its source
        tips = pick(rank(f"proposal cover letter {project['title']}", ev.hits, bonus=actionable), 1)
        notes += [f"- Tip: {t.text.rstrip('.')}. [{t.source}]" for t in tips]
    return f"{letter}\n\n{DRAFT_NOTES} (for you, not part of the letter)\n" + "\n".join(notes)
