"""Typed tools over the repositories, always run as the caller.

Each tool has a pydantic argument model (with descriptions the model sees) that forbids unknown
fields, so an id smuggled in by the model is rejected, not used. The caller's identity comes only
from `ToolContext.user_id`, set by the server or CLI — never from arguments — and every tool body
runs inside `Database.as_user`, so row-level security applies whatever the query. A tool error
becomes a result the model can read (`ToolOutcome.error`), never an exception out of the turn.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import psycopg
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.bidding import recommend_bid, recommend_rate
from retrieval.search import search
from store.db import Database

Segment = Literal["entry", "intermediate", "expert"]


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class ToolContext:
    db: Database
    user_id: int | None
    allowed_corpora: list[str] = field(default_factory=list)
    transcript: str = ""
    conversation_id: str | None = None
    question: str = ""  # the customer's own words this turn (a ticket's subject)
    visitor_ticket_limits: tuple[int, int] = (10, 100)  # new tickets an hour from visitors of one address, site


@dataclass
class ToolOutcome:
    name: str
    data: Any = None
    error: str | None = None


class ToolError(Exception):
    """A problem the model should read and can react to (bad id, nothing found, not allowed)."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[Args]
    run: Callable[[psycopg.Connection, ToolContext, Any], Any]
    private: bool = True  # needs a signed-in caller

    def openai_schema(self) -> dict[str, Any]:
        return _schema(self.name, self.description, self.args)


@lru_cache(maxsize=128)
def _schema(name: str, description: str, args: type[Args]) -> dict[str, Any]:
    """Built once per tool: every turn that offers tools sends them."""
    schema = args.model_json_schema()
    schema.pop("title", None)
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


def jsonable(value: Any) -> Any:
    """Decimals, dates and nested rows into plain JSON values."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# -- argument models ---------------------------------------------------------------------------

class NoArgs(Args):
    pass


class ClientProjectsArgs(Args):
    status: Literal["active", "completed"] | None = Field(None, description="only active or completed projects")
    limit: int = Field(20, ge=1, le=50, description="most recent first")


class RevenueArgs(Args):
    group_by: Literal["month", "skill", "client"] = Field("month", description="how to break revenue down")
    months: int = Field(12, ge=1, le=60, description="how many months back from the latest record")


class MarketRatesArgs(Args):
    skill: str | None = Field(None, description="skill name, e.g. 'Figma' or 'React'; default: the caller's main skill")
    segment: Segment | None = Field(None, description="experience segment; default: the caller's level")


class RateAdviceArgs(MarketRatesArgs):
    current_rate: float | None = Field(None, gt=0, le=10_000, description="the hourly rate the user says they "
                                       "charge now, if they said one; default: the profile's rate")


class SearchProjectsArgs(Args):
    skills: list[str] = Field(default_factory=list, description="skill names the project must need (any of)")
    text: str | None = Field(None, description="words to look for in title or description")
    project_type: Literal["fixed", "hourly", "milestone"] | None = None
    budget_min: float | None = Field(None, ge=0, description="minimum budget_max in USD")
    limit: int = Field(8, ge=1, le=25)


class ProjectArgs(Args):
    project_id: int = Field(..., gt=0, description="marketplace project id")


class ProposalsArgs(Args):
    status: Literal["draft", "submitted", "shortlisted", "accepted", "rejected", "withdrawn"] | None = None
    limit: int = Field(20, ge=1, le=50)


class SaveDraftArgs(Args):
    project_id: int = Field(..., gt=0)
    cover_letter: str = Field(..., min_length=20, max_length=6000)
    bid_amount: float = Field(
        ..., gt=0, le=1_000_000, description="USD: total for fixed/milestone, per hour for hourly"
    )
    bid_type: Literal["fixed", "hourly"]
    estimated_hours: int | None = Field(None, gt=0, le=5000)
    rationale: dict[str, Any] = Field(default_factory=dict)


class TicketArgs(Args):
    subject: str | None = Field(None, max_length=200, description="ignored: a ticket's subject is always the "
                                "customer's own words")
    reason: Literal["user_request", "no_answer", "upset", "other"] = "user_request"


class KnowledgeArgs(Args):
    query: str = Field(..., min_length=2, max_length=500)
    corpus: str | None = Field(None, description="one of the persona's corpora; default: all of them")
    k: int = Field(4, ge=1, le=10)


# -- tool bodies -----------------------------------------------------------------------------

def _require(row: Any, what: str) -> Any:
    if not row:
        raise ToolError(f"{what} not found")
    return row


def my_profile(conn: psycopg.Connection, ctx: ToolContext, _: NoArgs) -> dict:
    profile = conn.execute(
        """SELECT u.name, u.plan_id AS plan, u.country, fp.headline, fp.hourly_rate, fp.experience_level,
                  fp.years_experience, fp.total_revenue, fp.jobs_completed, fp.rating
           FROM users u LEFT JOIN freelancer_profiles fp ON fp.user_id = u.id""").fetchone()
    profile = _require(profile, "profile")
    profile["skills"] = conn.execute(
        """SELECT s.name, fs.years, fs.is_primary FROM freelancer_skills fs JOIN skills s ON s.id = fs.skill_id
           ORDER BY fs.is_primary DESC, fs.years DESC""").fetchall()
    return profile


def my_client_projects(conn: psycopg.Connection, ctx: ToolContext, args: ClientProjectsArgs) -> dict:
    rows = conn.execute(
        """SELECT cp.id, cp.title, c.company_name AS client, cp.project_type, cp.start_date, cp.end_date,
                  cp.hourly_rate, cp.hours, cp.revenue, cp.client_satisfaction, cp.status
           FROM client_projects cp JOIN clients c ON c.id = cp.client_id
           WHERE (%(s)s::text IS NULL OR cp.status = %(s)s)
           ORDER BY cp.start_date DESC LIMIT %(n)s""", {"s": args.status, "n": args.limit}).fetchall()
    totals = conn.execute(
        "SELECT count(*) AS projects, coalesce(sum(revenue), 0) AS revenue, coalesce(sum(hours), 0) AS hours "
        "FROM client_projects").fetchone()
    return {"totals": totals, "projects": rows}


def my_revenue_summary(conn: psycopg.Connection, ctx: ToolContext, args: RevenueArgs) -> dict:
    latest = conn.execute("SELECT max(revenue_date) AS d FROM revenue_attributions").fetchone()["d"]
    if latest is None:
        return {"total": 0, "rows": [], "note": "no revenue recorded yet"}
    since = (latest.replace(day=1) - dt.timedelta(days=31 * (args.months - 1))).replace(day=1)
    key = {"month": "to_char(ra.revenue_date, 'YYYY-MM')", "skill": "s.name", "client": "c.company_name"}[
        args.group_by]
    rows = conn.execute(
        f"""SELECT {key} AS key, sum(ra.amount) AS revenue, count(DISTINCT ra.client_project_id) AS projects
            FROM revenue_attributions ra JOIN skills s ON s.id = ra.skill_id
            JOIN client_projects cp ON cp.id = ra.client_project_id JOIN clients c ON c.id = cp.client_id
            WHERE ra.revenue_date >= %s GROUP BY 1 ORDER BY {'1' if args.group_by == 'month' else '2 DESC'}""",
        (since,)).fetchall()
    total = sum((r["revenue"] for r in rows), Decimal(0))
    all_time = conn.execute("SELECT coalesce(sum(amount), 0) AS t FROM revenue_attributions").fetchone()["t"]
    return {"group_by": args.group_by, "since": since, "until": latest, "total": total, "all_time_total": all_time,
            "rows": [{args.group_by: r["key"], "revenue": r["revenue"], "projects": r["projects"]} for r in rows]}


def learning_roi(conn: psycopg.Connection, ctx: ToolContext, _: NoArgs) -> dict:
    rows = conn.execute(
        """SELECT s.name AS skill, sp.hours_learned, sp.revenue_from_skill AS revenue, sp.monetization_status,
                  CASE WHEN sp.hours_learned > 0 THEN round(sp.revenue_from_skill / sp.hours_learned, 2) END
                      AS revenue_per_learning_hour
           FROM skill_progress sp JOIN skills s ON s.id = sp.skill_id
           ORDER BY sp.revenue_from_skill DESC""").fetchall()
    learned = [r for r in rows if r["hours_learned"] > 0]
    # total hours from the sessions themselves: summing the per-skill rounded figures drifts by cents
    hours = conn.execute(
        "SELECT coalesce(round(sum(duration_minutes) / 60.0, 2), 0) AS h FROM learning_sessions").fetchone()["h"]
    revenue = sum((r["revenue"] for r in learned), Decimal(0))
    return {
        "learning_hours": hours,
        "revenue_from_learned_skills": revenue,
        "revenue_per_learning_hour": (revenue / hours).quantize(Decimal("0.01")) if hours else None,
        "skills_monetized": sum(1 for r in rows if r["monetization_status"] == "generating_revenue"),
        "skills_tracked": len(rows),
        "skills": rows,
    }


def _skill_row(conn: psycopg.Connection, name: str) -> dict:
    row = conn.execute(
        "SELECT id, name FROM skills WHERE lower(name) = lower(%s) OR slug = lower(%s)", (name, name)).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT id, name FROM skills WHERE name ILIKE %s ORDER BY length(name) LIMIT 1", (f"%{name}%",)).fetchone()
    return _require(row, f"skill {name!r}")


def market_rates(conn: psycopg.Connection, ctx: ToolContext, args: MarketRatesArgs) -> dict:
    skill_name, segment = args.skill, args.segment
    if skill_name is None or segment is None:
        mine = conn.execute(
            """SELECT s.name, fp.experience_level FROM freelancer_profiles fp
               JOIN freelancer_skills fs ON fs.user_id = fp.user_id AND fs.is_primary
               JOIN skills s ON s.id = fs.skill_id""").fetchone()
        if skill_name is None and mine is None:
            raise ToolError("no skill given and the caller has no primary skill")
        skill_name = skill_name or mine["name"]
        segment = segment or (mine["experience_level"] if mine else "intermediate")
    skill = _skill_row(conn, skill_name)
    rows = conn.execute(
        """SELECT segment, p25, p50, p75, p90, demand_score, trend, trend_pct, sample_size, updated_on
           FROM market_rates WHERE skill_id = %s
           ORDER BY array_position(ARRAY['entry','intermediate','expert'], segment)""", (skill["id"],)).fetchall()
    chosen = next(r for r in rows if r["segment"] == segment)
    return {"skill": skill["name"], "segment": segment, "unit": "USD per hour", **chosen, "all_segments": rows}


def search_projects(conn: psycopg.Connection, ctx: ToolContext, args: SearchProjectsArgs) -> dict:
    skill_ids = [_skill_row(conn, s)["id"] for s in args.skills]
    rows = conn.execute(
        """SELECT p.id, p.title, p.project_type, p.budget_min, p.budget_max, p.estimated_hours,
                  p.experience_level, p.complexity, p.posted_at,
                  (SELECT array_agg(s.name ORDER BY s.name) FROM project_skills ps JOIN skills s ON s.id = ps.skill_id
                   WHERE ps.project_id = p.id) AS skills
           FROM projects p
           WHERE p.status = 'open'
             AND (cardinality(%(skills)s::int[]) = 0 OR EXISTS (
                   SELECT 1 FROM project_skills ps WHERE ps.project_id = p.id AND ps.skill_id = ANY(%(skills)s)))
             AND (%(text)s::text IS NULL OR p.title ILIKE '%%' || %(text)s || '%%'
                  OR p.description ILIKE '%%' || %(text)s || '%%')
             AND (%(ptype)s::text IS NULL OR p.project_type = %(ptype)s)
             AND (%(bmin)s::numeric IS NULL OR p.budget_max >= %(bmin)s)
           ORDER BY p.posted_at DESC LIMIT %(limit)s""",
        {"skills": skill_ids, "text": args.text, "ptype": args.project_type, "bmin": args.budget_min,
         "limit": args.limit}).fetchall()
    return {"count": len(rows), "projects": rows,
            "budget_note": "fixed/milestone budgets are totals; hourly budgets are USD per hour"}


def get_project(conn: psycopg.Connection, ctx: ToolContext, args: ProjectArgs) -> dict:
    project = _require(conn.execute(
        """SELECT p.id, p.title, p.description, p.project_type, p.budget_min, p.budget_max, p.estimated_hours,
                  p.experience_level, p.complexity, p.status, p.posted_at,
                  c.company_name AS client, c.industry, c.company_size, c.country
           FROM projects p JOIN clients c ON c.id = p.client_id WHERE p.id = %s""",
        (args.project_id,)).fetchone(), f"project {args.project_id}")
    # The skill the title names is the project's main one: list it first (bids and simulations use it).
    project["skills"] = [r["name"] for r in conn.execute(
        """SELECT s.name FROM project_skills ps JOIN skills s ON s.id = ps.skill_id
           WHERE ps.project_id = %s ORDER BY strpos(lower(%s), lower(s.name)) = 0, s.name""",
        (args.project_id, project["title"]))]
    project["milestones"] = conn.execute(
        "SELECT position, title, amount FROM project_milestones WHERE project_id = %s ORDER BY position",
        (args.project_id,)).fetchall()
    return project


def my_proposals(conn: psycopg.Connection, ctx: ToolContext, args: ProposalsArgs) -> dict:
    rows = conn.execute(
        """SELECT pr.id, pr.project_id, p.title AS project, pr.bid_amount, pr.bid_type, pr.status, pr.created_at
           FROM proposals pr JOIN projects p ON p.id = pr.project_id
           WHERE pr.freelancer_id = app_user_id() AND (%(s)s::text IS NULL OR pr.status = %(s)s)
           ORDER BY pr.created_at DESC LIMIT %(n)s""", {"s": args.status, "n": args.limit}).fetchall()
    return {"count": len(rows), "proposals": rows}


def save_proposal_draft(conn: psycopg.Connection, ctx: ToolContext, args: SaveDraftArgs) -> dict:
    """One draft per freelancer and project: a revision ("make it shorter") updates it."""
    _require(conn.execute("SELECT id FROM projects WHERE id = %s AND status = 'open'", (args.project_id,)).fetchone(),
             f"open project {args.project_id}")
    values = (args.cover_letter, Decimal(str(round(args.bid_amount, 2))), args.bid_type, args.estimated_hours,
              json.dumps(jsonable(args.rationale)))
    row = conn.execute(
        """UPDATE proposals SET cover_letter = %s, bid_amount = %s, bid_type = %s, estimated_hours = %s,
                  rationale = %s, created_at = now()
           WHERE id = (SELECT id FROM proposals WHERE project_id = %s AND freelancer_id = app_user_id()
                       AND status = 'draft' ORDER BY id DESC LIMIT 1)
           RETURNING id, status, created_at""", (*values, args.project_id)).fetchone()
    revised = row is not None
    if row is None:
        row = conn.execute(
            """INSERT INTO proposals (cover_letter, bid_amount, bid_type, estimated_hours, rationale, project_id,
                                      freelancer_id, status)
               VALUES (%s, %s, %s, %s, %s, %s, app_user_id(), 'draft') RETURNING id, status, created_at""",
            (*values, args.project_id)).fetchone()
    return {"proposal_id": row["id"], "status": row["status"], "project_id": args.project_id,
            "bid_amount": round(args.bid_amount, 2), "bid_type": args.bid_type, "revised": revised}


def recommend_bid_tool(conn: psycopg.Connection, ctx: ToolContext, args: ProjectArgs) -> dict:
    project = get_project(conn, ctx, args)
    profile = my_profile(conn, ctx, NoArgs())
    skill = project["skills"][0] if project["skills"] else None  # the skill the title names: the work bid on
    if skill is None:
        raise ToolError("the project lists no skills")
    # the market for that skill at the freelancer's own level (their rate is compared with their peers)
    segment = profile.get("experience_level") or project["experience_level"]
    rates = market_rates(conn, ctx, MarketRatesArgs(skill=skill, segment=segment))
    return recommend_bid(project, profile, rates).model_dump()


def recommend_rate_tool(conn: psycopg.Connection, ctx: ToolContext, args: RateAdviceArgs) -> dict:
    rates = market_rates(conn, ctx, MarketRatesArgs(skill=args.skill, segment=args.segment))
    profile = my_profile(conn, ctx, NoArgs()) if ctx.user_id is not None else None
    return recommend_rate(rates, profile, args.current_rate).model_dump()


def my_account(conn: psycopg.Connection, ctx: ToolContext, _: NoArgs) -> dict:
    account = _require(conn.execute(
        """SELECT u.name, u.email, u.role, u.verified, p.name AS plan, p.monthly_price, p.commission_rate,
                  p.proposals_per_month
           FROM users u JOIN subscription_plans p ON p.id = u.plan_id""").fetchone(), "account")
    account["orders"] = conn.execute(
        """SELECT id, CASE WHEN buyer_id = app_user_id() THEN 'buyer' ELSE 'freelancer' END AS side, amount,
                  commission_amount, client_fee, status, created_at
           FROM orders ORDER BY created_at DESC LIMIT 10""").fetchall()
    account["payments"] = conn.execute(
        """SELECT id, order_id, kind, amount, status, method, created_at FROM payments
           ORDER BY created_at DESC LIMIT 10""").fetchall()
    return account


TICKETS_PER_HOUR = 3  # new tickets per visitor or user an hour, across their conversations; then they join one


def ticket_subject(words: str) -> str:
    """A ticket's subject: the customer's message, on one line, cut at a word near 80 characters. Never
    what a model wrote (a small one writes markup: `<tool_call>_‹tool_call_call…`)."""
    text = " ".join(words.split())
    if len(text) <= 80:
        return text or "(no message)"
    return text[:80].rsplit(" ", 1)[0] + "…"


def create_support_ticket(conn: psycopg.Connection, ctx: ToolContext, args: TicketArgs) -> dict:
    """Open a ticket, unless one is open: asking again in the same conversation adds to that one, and past
    the hourly limit a request joins the customer's newest open ticket. A customer is never refused a person."""
    if ctx.conversation_id is not None:
        found = conn.execute("SELECT * FROM open_ticket_for(%s)", (ctx.conversation_id,)).fetchone()
        if found is not None and found["same_conversation"]:
            return {"ticket_id": found["ticket_id"], "status": "open", "reason": args.reason, "already_open": True}
        recent = conn.execute("SELECT recent_ticket_count(%s) AS n", (ctx.conversation_id,)).fetchone()["n"]
        if recent >= TICKETS_PER_HOUR and found is not None:
            return {"ticket_id": found["ticket_id"], "status": "open", "reason": args.reason, "already_open": True,
                    "in_another_conversation": True}
        flood = conn.execute("SELECT * FROM recent_visitor_tickets(%s)", (ctx.conversation_id,)).fetchone()
        per_address, per_site = ctx.visitor_ticket_limits  # a flood of fresh visitor ids from one place
        if flood is not None and (flood["same_address"] >= per_address or flood["same_site"] >= per_site):
            raise ToolError("Our support team has had a great many requests from here in the last hour, so I can't "
                            "open a new ticket right now. Please try again later, or sign in to contact support.")
    # The id is drawn first so no RETURNING is needed: an anonymous visitor may file a ticket
    # but, under row-level security, can never read one back.
    ticket_id = conn.execute("SELECT nextval(pg_get_serial_sequence('support_tickets', 'id')) AS id").fetchone()["id"]
    conn.execute(
        """INSERT INTO support_tickets (id, user_id, conversation_id, subject, reason, transcript)
           VALUES (%s, app_user_id(), %s, %s, %s, %s)""",
        (ticket_id, ctx.conversation_id, ticket_subject(ctx.question or ctx.transcript), args.reason,
         ctx.transcript or "(no transcript)"))
    return {"ticket_id": ticket_id, "status": "open", "reason": args.reason, "already_open": False}


def search_knowledge(conn: psycopg.Connection, ctx: ToolContext, args: KnowledgeArgs) -> dict:
    if args.corpus and args.corpus not in ctx.allowed_corpora:
        raise ToolError(f"corpus {args.corpus!r} is not available here; use one of {ctx.allowed_corpora}")
    corpora = [args.corpus] if args.corpus else ctx.allowed_corpora
    hits = search(ctx.db, args.query, corpora=corpora or None, k=args.k)
    return {"results": [{"chunk_id": h.chunk_id, "title": h.title, "section": h.section, "source": h.source,
                         "text": h.text} for h in hits]}


TOOLS: dict[str, Tool] = {t.name: t for t in [
    Tool("my_profile", "The signed-in freelancer's profile: rate, level, skills, totals.", NoArgs, my_profile),
    Tool("my_client_projects", "The caller's client projects (rate, hours, revenue, satisfaction), newest first.",
         ClientProjectsArgs, my_client_projects),
    Tool("my_revenue_summary", "The caller's revenue by month, skill or client.", RevenueArgs, my_revenue_summary),
    Tool("learning_roi", "Revenue per learning hour and skills monetized, for the caller.", NoArgs, learning_roi),
    Tool("market_rates", "Hourly rate percentiles (p25/p50/p75/p90), demand 1-10 and trend for a skill and segment.",
         MarketRatesArgs, market_rates, private=False),
    Tool("search_projects", "Open marketplace projects by skills, words, type and budget.", SearchProjectsArgs,
         search_projects, private=False),
    Tool("get_project", "One marketplace project with budget, skills, milestones and client.", ProjectArgs,
         get_project, private=False),
    Tool("my_proposals", "The caller's proposals, including saved drafts.", ProposalsArgs, my_proposals),
    Tool("recommend_bid", "A recommended bid for a project from market rates and the caller's own rate.",
         ProjectArgs, recommend_bid_tool),
    Tool("save_proposal_draft", "Save a draft proposal (cover letter and bid) for the caller.", SaveDraftArgs,
         save_proposal_draft),
    Tool("recommend_rate", "Where an hourly rate sits among the market percentiles and the range to aim for, "
         "with the reasoning.", RateAdviceArgs, recommend_rate_tool, private=False),
    Tool("my_account", "The caller's plan (commission, proposal limit), recent orders and payments.", NoArgs,
         my_account),
    Tool("create_support_ticket", "Hand the conversation to a human: opens a support ticket.", TicketArgs,
         create_support_ticket, private=False),
    Tool("search_knowledge", "Search the persona's knowledge corpora.", KnowledgeArgs, search_knowledge,
         private=False),
]}

_SMUGGLED_ID = re.compile(r"(user|freelancer|owner|client|buyer)_?id", re.I)


def run_tool(name: str, raw_args: Any, ctx: ToolContext, allowed: list[str] | None = None) -> ToolOutcome:
    """Validate and run one tool as the caller; every failure becomes a readable error outcome."""
    tool = TOOLS.get(name)
    if tool is None or (allowed is not None and name not in allowed):
        return ToolOutcome(name, error=f"unknown tool {name!r}; available: {', '.join(allowed or TOOLS)}")
    if isinstance(raw_args, str):
        try:
            raw_args = json.loads(raw_args or "{}")
        except json.JSONDecodeError:
            return ToolOutcome(name, error="arguments are not valid JSON")
    if not isinstance(raw_args, dict):
        return ToolOutcome(name, error="arguments must be a JSON object")
    smuggled = [k for k in raw_args if _SMUGGLED_ID.fullmatch(k)]
    if smuggled:
        return ToolOutcome(name, error=f"{', '.join(smuggled)} cannot be set: tools always act for the signed-in user")
    try:
        args = tool.args.model_validate(raw_args)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        return ToolOutcome(name, error=f"invalid arguments: {problems}")
    if tool.private and ctx.user_id is None:
        return ToolOutcome(name, error="this needs a signed-in user; anonymous visitors get public information only")
    try:
        with ctx.db.as_user(ctx.user_id) as conn:
            return ToolOutcome(name, data=jsonable(tool.run(conn, ctx, args)))
    except ToolError as exc:
        return ToolOutcome(name, error=str(exc))
    except psycopg.errors.InsufficientPrivilege:
        return ToolOutcome(name, error="not allowed for this user")
    except psycopg.Error as exc:
        return ToolOutcome(name, error=f"database error: {type(exc).__name__}")


_skill_cache: dict[str, list[tuple[str, re.Pattern[str]]]] = {}


def detect_skill(db: Database, text: str) -> str | None:
    """The longest skill name mentioned in `text` (short names like "Go" must match case)."""
    patterns = _skill_cache.get(db.url)
    if patterns is None:
        with db.as_user(None) as conn:
            names = [r["name"] for r in conn.execute("SELECT name FROM skills")]
        patterns = sorted(
            ((n, re.compile(rf"(?<![\w.]){re.escape(n)}(?![\w])", 0 if len(n) <= 3 else re.I)) for n in names),
            key=lambda item: -len(item[0]))
        _skill_cache[db.url] = patterns
    for name, pattern in patterns:
        if pattern.search(text):
            return name
    return None
