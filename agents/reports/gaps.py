"""Knowledge gaps: the questions the bot failed, grouped, each group with why it failed and what to write.

A failed question ended in an answer that was no answer ("I couldn't find…"), a handoff (its last question
that asked something; "a person, please" alone is no knowledge question), an answer rated ≤ 2, or a re-ask.
They are embedded with the retrieval model and clustered (scikit-learn, average linkage on cosine distance).
Each cluster's kind: *article missed* when a passage of the persona's knowledge lies within ARTICLE_NEAR of
its representative question (named, with its distance), else *no article*. "Check again" asks its
questions again against today's knowledge (the offline composer, as the support bot) and marks the cluster
fixed when every one of them is now answered — for questions that got no answer or a handoff only: one that
was answered and rated low, or asked again, was answered before too (`checkable` is False).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from agents.composer.structures import asks_only_for_a_person
from agents.reports.stats import NO_ANSWER, message_vectors, outcomes, window_start
from agents.sentiment import MILD, STRONG, is_upset
from retrieval.coverage import subject_words
from store import reports
from store.db import Database

# Questions closer than this (cosine distance, average linkage) are one gap. On evals/heldout/reasks.yaml's
# pairs (a re-ask is a paraphrase), similarity ≥ 0.55 joins 10 of 11 paraphrases on the tune half and 11 of 11
# on the report half; it also joins some different questions on one topic (4 and 7 of 11), which one article
# usually answers together.
CLUSTER_DISTANCE = 0.45
# A passage this close to the question (cosine distance) is an article that exists. On the shipped help
# center, 16 of 18 answerable paraphrases (evals/heldout/paraphrases.yaml) have their best passage within
# 0.56, and 8 of 10 questions it does not answer lie farther.
ARTICLE_NEAR = 0.56


VENTING_WORDS = frozenset({"bot", "human", "person", "agent", "support", "help", "service", "answer", "answers",
                           "chat", "time", "again", "still", "thing", "anything", "nothing", "people", "furious",
                           "angry", "useless", "terrible", "joke", "waste"})


class GapQuestion(BaseModel):
    message_id: int
    conversation_id: str
    text: str
    asked_at: datetime
    why: Literal["no_answer", "handoff", "low_rating", "reask"]
    answered_now: bool | None = Field(None, description="the last 'check again': answered by today's knowledge")


class Passage(BaseModel):
    title: str
    section: str
    source: str
    anchor: str
    distance: float


class Gap(BaseModel):
    id: int = Field(description="the representative question's message id")
    count: int
    representative: str
    kind: Literal["no_article", "article_missed"]
    nearest: list[Passage]
    questions: list[GapQuestion] = Field(description="newest first")
    outline: str = Field(description="a draft of the article to write, in markdown")
    fixed: bool = Field(False, description="a check again found every question answered; only a gap of questions "
                                           "that got no answer or a handoff can be fixed so (see `checkable`)")
    checkable: bool = Field(True, description="False when some of its questions were answered but rated low or "
                                              "asked again: an answer now proves nothing; read them")


def only_venting(text: str) -> bool:
    """"This is useless, you are a terrible bot": upset, and about nothing the knowledge could hold."""
    if not is_upset(text):
        return False
    return not (set(subject_words(text)) - VENTING_WORDS - {w for w in STRONG | MILD if " " not in w})


def failed_questions(db: Database, since: datetime) -> list[GapQuestion]:
    convs, messages = reports.conversations(db, since), reports.user_messages(db, since)
    turns = reports.turns(db, since)
    results = outcomes(convs, messages, turns, message_vectors(db, messages))
    checks = reports.gap_checks(db)
    picked: dict[int, GapQuestion] = {}

    def add(mid: int | None, why: str) -> None:
        m = by_id.get(mid)
        if m is None or mid in picked or asks_only_for_a_person(m["content"]) or only_venting(m["content"]):
            return
        picked[mid] = GapQuestion(message_id=mid, conversation_id=m["conversation_id"], text=m["content"],
                                  asked_at=m["created_at"], why=why, answered_now=checks.get(mid))

    by_id = {m["id"]: m for m in messages}
    for t in turns:
        if t["status"] == "complete" and NO_ANSWER.search(t["content"]):
            add(t["question_id"], "no_answer")
        if t["rating"] is not None and t["rating"] <= 2:
            add(t["question_id"], "low_rating")
    per_conv: dict[str, list[dict]] = defaultdict(list)
    for m in messages:
        per_conv[m["conversation_id"]].append(m)
    for cid, (outcome, detail) in results.items():
        asked = [m for m in per_conv[cid] if not asks_only_for_a_person(m["content"])]
        if outcome == "handed_off" and asked:
            add(asked[-1]["id"], "handoff")
        elif outcome == "unresolved" and detail == "reask" and asked:
            add(asked[0]["id"], "reask")
    return sorted(picked.values(), key=lambda q: q.asked_at, reverse=True)


def cluster(vectors: np.ndarray) -> list[list[int]]:
    """Indices grouped by meaning, largest group first."""
    if len(vectors) == 0:
        return []
    if len(vectors) == 1:
        return [[0]]
    from sklearn.cluster import AgglomerativeClustering

    labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                     distance_threshold=CLUSTER_DISTANCE).fit_predict(vectors)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        groups[int(label)].append(i)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def _nearest(db: Database, question: str, vector: np.ndarray, corpora: list[str]) -> list[Passage]:
    from retrieval.search import search

    hits = search(db, question, corpora=corpora or None, k=3, vector=vector)
    return sorted((Passage(title=h.title, section=h.section, source=h.source, anchor=h.anchor,
                           distance=round(h.distance, 3)) for h in hits if h.distance is not None),
                  key=lambda p: p.distance)


def outline(representative: str, questions: list[GapQuestion], nearest: list[Passage], kind: str) -> str:
    lines = [f"# {representative.strip().rstrip('?')}", "", "Questions customers asked:"]
    lines += [f"- {q}" for q in dict.fromkeys(q.text.strip() for q in questions)]
    if kind == "article_missed":
        lines += ["", "An article exists but the bot did not use it: make its answer findable (the customers' own "
                  "words in its heading and first sentence):"]
    else:
        lines += ["", "Nearest existing sections (link to them, or extend one):"]
    lines += [f"- {p.title} › {p.section} ({p.source}#{p.anchor}, distance {p.distance})" for p in nearest]
    lines += ["", "## Answer", "", "(the direct answer, in one or two sentences)", "", "## Steps", "", "1. …"]
    return "\n".join(lines)


def gaps(db: Database, days: int = 30, corpora: list[str] | None = None) -> list[Gap]:
    """The knowledge gaps of the last `days` days, largest first."""
    questions = failed_questions(db, window_start(days))
    if not questions:
        return []
    vectors = message_vectors(db, [{"id": q.message_id, "content": q.text} for q in questions])
    corpora = corpora if corpora is not None else ["help_center"]
    found = []
    for group in cluster(vectors):
        members = [questions[i] for i in group]
        centre = vectors[group].mean(axis=0)
        closeness = np.round(vectors[group] @ centre, 4)  # ties (the same words twice) go to the oldest message,
        rep = min((i for i, c in zip(group, closeness, strict=True) if c == closeness.max()),  # so every process
                  key=lambda i: questions[i].message_id)  # names a gap alike
        nearest = _nearest(db, questions[rep].text, vectors[rep], corpora)
        kind = "article_missed" if nearest and nearest[0].distance <= ARTICLE_NEAR else "no_article"
        checkable = all(q.why in ("no_answer", "handoff") for q in members)
        found.append(Gap(id=questions[rep].message_id, count=len(members), representative=questions[rep].text,
                         kind=kind, nearest=nearest, questions=members,
                         outline=outline(questions[rep].text, members, nearest, kind),
                         fixed=checkable and all(q.answered_now for q in members), checkable=checkable))
    return found


def check_again(db: Database, gap: Gap) -> Gap:
    """Ask the gap's questions again as the support bot, offline, against today's knowledge; remember which
    are answered now. Nothing is sent to anyone and no ticket is opened (the persona runs without hooks)."""
    from agents.aio import iterate_blocking
    from agents.assist import answer_text, support_without_tickets
    from agents.composer import COMPOSER
    from agents.requests import TurnRequest
    from agents.runtime import Turn

    persona = support_without_tickets()
    for q in gap.questions:
        text = answer_text(iterate_blocking(Turn(TurnRequest(persona="support", text=q.text), persona, db, COMPOSER,
                                                 None, None).run()))
        q.answered_now = bool(text) and not NO_ANSWER.search(text)
        reports.save_gap_check(db, q.message_id, q.answered_now)
    gap.fixed = gap.checkable and all(q.answered_now for q in gap.questions)
    return gap
