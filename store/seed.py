"""`mentor seed`: a deterministic, realistic demo dataset.

Everything comes from one `random.Random(seed)` and a fixed "as of" date, so the same seed and scale
give the same rows on any machine. Money is computed in Decimal so the consistency checks
(store/checks.py) hold to the cent: revenue = rate x hours, attributed revenue = profile totals,
skill monetization status agrees with attributed revenue.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from core.errors import InvalidArgument
from store.catalog import (
    CLIENT_FEE_RATE,
    COMPANY_SUFFIX,
    COMPANY_WORDS,
    CORPUS_DIR,
    COUNTRIES,
    FIRST_NAMES,
    INDUSTRIES,
    LAST_NAMES,
    PLANS,
    PROJECT_TEMPLATES,
    SEGMENTS,
    SKILL_CATALOG,
)
from store.db import Database

AS_OF = date(2026, 10, 31)
CENT = Decimal("0.01")

SEEDED_TABLES = [
    "support_tickets", "feedback", "citations", "tool_calls", "conversation_events", "messages",
    "conversations", "revenue_attributions", "skill_progress", "learning_sessions", "client_projects",
    "payments", "orders", "proposals", "gigs", "project_milestones", "project_skills", "projects",
    "clients", "freelancer_skills", "freelancer_profiles", "users", "market_rates", "skills",
    "subscription_plans",
]


def money(value: Decimal | float) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def slugify(text: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "-" for ch in text)
    return "-".join(part for part in out.split("-") if part)


def _ts(day: date, rng: random.Random) -> datetime:
    return datetime.combine(day, time(rng.randint(7, 20), rng.randint(0, 59)), tzinfo=UTC)


@dataclass
class DemoUser:
    handle: str
    name: str
    role: str
    plan: str
    note: str
    level: str = "entry"
    skills: list[str] = field(default_factory=list)
    projects: int = 0
    sessions: int = 0
    rate_factor: float = 1.0


DEMO_USERS = [
    DemoUser("nora", "Nora Bennett", "freelancer", "free",
             "Newcomer: WordPress and copywriting, first paid projects, learning pricing and proposals",
             "entry", ["WordPress", "HTML & CSS", "Copywriting"], projects=2, sessions=16, rate_factor=0.9),
    DemoUser("mateo", "Mateo Alvarez", "freelancer", "plus",
             "Mid-level React developer: steady client base, wants to raise rates and niche down",
             "intermediate", ["React", "TypeScript", "Node.js", "Next.js"], projects=18, sessions=28),
    DemoUser("sofia", "Sofia Lindqvist", "freelancer", "pro",
             "Senior product designer: Figma, design systems and brand work for SaaS clients",
             "expert", ["Figma", "UI Design", "Design Systems", "Brand Identity"], projects=34, sessions=22,
             rate_factor=1.1),
    DemoUser("dana", "Dana Whitfield", "client", "free",
             "Client: runs Acme Outdoor Co., hires developers and designers on the marketplace"),
]

# Support staff (issue 13): answer handed-over conversations in the inbox. Two agents, so a claim between
# agents can be tried; an admin reads every conversation and the operator's reports.
DEMO_STAFF = [
    DemoUser("ana", "Ana Ruiz", "agent", "free",
             "Support agent: answers the conversations the support bot hands to a person (/inbox)"),
    DemoUser("ben", "Ben Okafor", "agent", "free",
             "Support agent: a second agent, to try a claim between agents (/inbox)"),
    DemoUser("olivia", "Olivia Grant", "admin", "free",
             "Admin: reads every conversation, the inbox and the operator's reports"),
]


@dataclass
class SeedSummary:
    counts: dict[str, int]
    already_seeded: bool = False


class _Rows:
    """Rows per table, in insertion order, with explicit ids so the data is reproducible."""

    def __init__(self) -> None:
        self.tables: dict[str, tuple[list[str], list[tuple]]] = {}
        self.next_ids: dict[str, int] = defaultdict(lambda: 1)

    def add(self, table: str, columns: list[str], row: tuple) -> None:
        cols, rows = self.tables.setdefault(table, (columns, []))
        rows.append(row)

    def new_id(self, table: str) -> int:
        value = self.next_ids[table]
        self.next_ids[table] += 1
        return value


def lesson_slugs() -> list[str]:
    """Curriculum lesson slugs (file stems) so learning sessions point at real lessons."""
    folder = CORPUS_DIR / "curriculum"
    slugs = sorted(p.stem for p in folder.rglob("*.md")) if folder.is_dir() else []
    return slugs or [f"lesson-{i:02d}" for i in range(1, 41)]


class _Generator:
    def __init__(self, scale: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.scale = scale
        self.r = _Rows()
        self.lessons = lesson_slugs()
        self.skill_ids: dict[str, int] = {}
        self.skill_name: dict[int, str] = {}
        self.skill_category: dict[int, str] = {}
        self.skills_by_category: dict[str, list[int]] = defaultdict(list)
        self.market: dict[tuple[int, str], tuple[Decimal, Decimal, Decimal, Decimal]] = {}
        self.plan_rate = {p[0]: Decimal(str(p[3])) for p in PLANS}
        self.user_plan: dict[int, str] = {}
        self.freelancer_skills: dict[int, list[int]] = {}
        self.freelancer_rate: dict[int, Decimal] = {}
        self.freelancer_level: dict[int, str] = {}
        self.client_users: list[int] = []
        self.client_ids: list[int] = []
        self.client_owner: dict[int, int | None] = {}

    def n(self, base: int, minimum: int) -> int:
        return max(minimum, round(base * self.scale))

    # -- reference data -------------------------------------------------------------------------
    def plans_and_skills(self) -> None:
        for pid, name, price, rate, proposals, desc in PLANS:
            self.r.add("subscription_plans",
                       ["id", "name", "monthly_price", "commission_rate", "proposals_per_month", "description"],
                       (pid, name, money(price), Decimal(str(rate)), proposals, desc))
        for category, (median, names) in SKILL_CATALOG.items():
            for name in names:
                sid = self.r.new_id("skills")
                self.skill_ids[name] = sid
                self.skill_name[sid] = name
                self.skill_category[sid] = category
                self.skills_by_category[category].append(sid)
                self.r.add("skills", ["id", "slug", "name", "category"], (sid, slugify(name), name, category))
                base = median * self.rng.uniform(0.8, 1.3)
                demand = self.rng.randint(2, 10)
                trend = self.rng.choices(["rising", "stable", "declining"], [4, 4, 2])[0]
                pct = {"rising": self.rng.uniform(3, 22), "stable": self.rng.uniform(-2.5, 2.5),
                       "declining": -self.rng.uniform(3, 15)}[trend]
                for segment, factor in SEGMENTS.items():
                    p50 = Decimal(round(base * factor))
                    p25, p75, p90 = (Decimal(round(float(p50) * f)) for f in (0.78, 1.27, 1.6))
                    self.market[(sid, segment)] = (p25, p50, p75, p90)
                    self.r.add("market_rates",
                               ["skill_id", "segment", "p25", "p50", "p75", "p90", "demand_score", "trend",
                                "trend_pct", "sample_size", "updated_on"],
                               (sid, segment, p25, p50, p75, p90, demand, trend, round(pct, 1),
                                self.rng.randint(40, 2400), AS_OF))

    # -- people ----------------------------------------------------------------------------------
    def _user(self, handle: str, name: str, role: str, plan: str, demo_note: str | None = None) -> int:
        uid = self.r.new_id("users")
        self.user_plan[uid] = plan
        self.r.add("users",
                   ["id", "handle", "name", "email", "role", "plan_id", "country", "verified", "is_demo",
                    "demo_note", "created_at"],
                   (uid, handle, name, f"{handle}@example.com", role, plan, self.rng.choice(COUNTRIES),
                    demo_note is not None or self.rng.random() < 0.7, demo_note is not None, demo_note,
                    _ts(AS_OF - timedelta(days=self.rng.randint(60, 1500)), self.rng)))
        return uid

    def _profile(self, uid: int, name: str, level: str, skills: list[int], rate_factor: float) -> None:
        primary = skills[0]
        p50 = self.market[(primary, level)][1]
        rate = Decimal(round(float(p50) * rate_factor * self.rng.uniform(0.85, 1.2)))
        self.freelancer_rate[uid] = rate
        self.freelancer_level[uid] = level
        self.freelancer_skills[uid] = skills
        years = {"entry": self.rng.randint(0, 2), "intermediate": self.rng.randint(3, 6),
                 "expert": self.rng.randint(7, 15)}[level]
        skill_names = self.skill_name
        headline = f"{level.capitalize()} {skill_names[primary]} freelancer"
        bio = (f"{name.split()[0]} works on {', '.join(skill_names[s] for s in skills)} "
               f"for {self.rng.choice(INDUSTRIES).lower()} and {self.rng.choice(INDUSTRIES).lower()} clients.")
        self.r.add("freelancer_profiles",
                   ["user_id", "headline", "bio", "hourly_rate", "experience_level", "years_experience",
                    "available"],
                   (uid, headline, bio, rate, level, years, self.rng.random() < 0.8))
        for i, sid in enumerate(skills):
            self.r.add("freelancer_skills", ["user_id", "skill_id", "years", "is_primary"],
                       (uid, sid, max(0, years - i), i == 0))

    def _random_skills(self) -> list[int]:
        category = self.rng.choice(list(self.skills_by_category))
        pool = self.skills_by_category[category]
        chosen = self.rng.sample(pool, k=min(len(pool), self.rng.randint(2, 4)))
        if self.rng.random() < 0.3:  # a side skill from another category
            other = self.rng.choice([s for s in self.skill_ids.values() if s not in chosen])
            chosen.append(other)
        return chosen

    def people(self) -> None:
        demo_ids: dict[str, int] = {}
        for demo in DEMO_USERS:
            uid = self._user(demo.handle, demo.name, demo.role, demo.plan, demo.note)
            demo_ids[demo.handle] = uid
            if demo.role == "freelancer":
                skills = [self.skill_ids[s] for s in demo.skills]
                self._profile(uid, demo.name, demo.level, skills, demo.rate_factor)
            else:
                self.client_users.append(uid)
        self.demo_ids = demo_ids
        n_freelancers = self.n(500, 20)
        while len(self.freelancer_skills) < n_freelancers:
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            handle = f"{first}.{last}.{self.r.next_ids['users']}".lower()
            level = self.rng.choices(["entry", "intermediate", "expert"], [3, 5, 2])[0]
            plan = self.rng.choices(["free", "plus", "pro"], [6, 3, 1])[0]
            uid = self._user(handle, f"{first} {last}", "freelancer", plan)
            self._profile(uid, f"{first} {last}", level, self._random_skills(), 1.0)
        for _ in range(self.n(60, 5)):
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            handle = f"{first}.{last}.{self.r.next_ids['users']}".lower()
            self.client_users.append(self._user(handle, f"{first} {last}", "client", "free"))
        # companies: the demo client owns Acme Outdoor Co.; client users own one company each
        owners: list[int | None] = list(self.client_users) + [None] * (self.n(300, 20) - len(self.client_users))
        for i, owner in enumerate(owners):
            cid = self.r.new_id("clients")
            if owner == demo_ids["dana"]:
                name, industry = "Acme Outdoor Co.", "E-commerce"
            else:
                name = f"{self.rng.choice(COMPANY_WORDS)} {self.rng.choice(COMPANY_SUFFIX)} {i}"
                industry = self.rng.choice(INDUSTRIES)
            self.client_ids.append(cid)
            self.client_owner[cid] = owner
            self.r.add("clients", ["id", "user_id", "company_name", "industry", "country", "company_size"],
                       (cid, owner, name, industry, self.rng.choice(COUNTRIES),
                        self.rng.choice(["solo", "small", "medium", "enterprise"])))

    # -- learning and revenue records ----------------------------------------------------------
    def learning_and_revenue(self) -> None:
        demo_by_id = {self.demo_ids[d.handle]: d for d in DEMO_USERS if d.role == "freelancer"}
        for uid, skills in self.freelancer_skills.items():
            level = self.freelancer_level[uid]
            demo = demo_by_id.get(uid)
            n_sessions = demo.sessions if demo else self.rng.randint(0, 30)
            n_projects = demo.projects if demo else {
                "entry": self.rng.randint(0, 4), "intermediate": self.rng.randint(3, 12),
                "expert": self.rng.randint(6, 20)}[level]
            learned: dict[int, list[tuple[date, str, int]]] = defaultdict(list)
            extra = self.rng.choice(list(self.skill_ids.values()))
            for _ in range(n_sessions):
                sid = self.rng.choice(skills + [extra])
                day = AS_OF - timedelta(days=self.rng.randint(1, 700))
                minutes = self.rng.choice([20, 30, 45, 60, 90, 120])
                lesson = self.rng.choice(self.lessons)
                learned[sid].append((day, lesson, minutes))
                self.r.add("learning_sessions",
                           ["id", "freelancer_id", "skill_id", "lesson_slug", "started_at", "duration_minutes",
                            "completed"],
                           (self.r.new_id("learning_sessions"), uid, sid, lesson, _ts(day, self.rng), minutes,
                            self.rng.random() < 0.85))
            revenue_by_skill: dict[int, Decimal] = defaultdict(Decimal)
            first_revenue: dict[int, date] = {}
            total = Decimal(0)
            completed = 0
            ratings: list[Decimal] = []
            for _ in range(n_projects):
                cpid = self.r.new_id("client_projects")
                client = self.rng.choice(self.client_ids)
                start = AS_OF - timedelta(days=self.rng.randint(5, 720))
                active = start > AS_OF - timedelta(days=45) and self.rng.random() < 0.6
                end = None if active else min(AS_OF, start + timedelta(days=self.rng.randint(7, 120)))
                rate = money(self.freelancer_rate[uid] * Decimal(str(round(self.rng.uniform(0.85, 1.12), 3))))
                hours = Decimal(str(round(self.rng.uniform(4, 160) * 2) / 2))
                revenue = money(rate * hours)
                satisfaction = None if active else Decimal(str(self.rng.choice([3.5, 4.0, 4.5, 4.5, 5.0, 5.0])))
                ptype = self.rng.choice(["fixed", "hourly", "milestone"])
                skill = self.rng.choice(skills)
                title = f"{self.skill_name[skill]} work for {self.rng.choice(INDUSTRIES).lower()} client"
                self.r.add("client_projects",
                           ["id", "freelancer_id", "client_id", "title", "project_type", "start_date", "end_date",
                            "hourly_rate", "hours", "revenue", "client_satisfaction", "status"],
                           (cpid, uid, client, title, ptype, start, end, rate, hours, revenue, satisfaction,
                            "active" if active else "completed"))
                total += revenue
                if not active:
                    completed += 1
                    ratings.append(satisfaction)
                # attribute the revenue to one or two skills, to the cent
                split_skills = [skill] + ([s for s in skills if s != skill][:1] if self.rng.random() < 0.4 else [])
                first_share = money(revenue * Decimal(str(round(self.rng.uniform(0.55, 0.8), 2)))) \
                    if len(split_skills) == 2 else revenue
                shares = [first_share, revenue - first_share] if len(split_skills) == 2 else [revenue]
                rev_date = end or AS_OF
                for sid, amount in zip(split_skills, shares, strict=True):
                    prior = [s for s in learned.get(sid, []) if s[0] <= rev_date]
                    lesson = max(prior)[1] if prior else None
                    confidence = round(self.rng.uniform(0.6, 0.95), 2) if lesson else round(
                        self.rng.uniform(0.9, 1.0), 2)
                    self.r.add("revenue_attributions",
                               ["id", "freelancer_id", "client_project_id", "skill_id", "lesson_slug", "amount",
                                "confidence", "revenue_date"],
                               (self.r.new_id("revenue_attributions"), uid, cpid, sid, lesson, amount,
                                Decimal(str(confidence)), rev_date))
                    revenue_by_skill[sid] += amount
                    first_revenue[sid] = min(first_revenue.get(sid, rev_date), rev_date)
            for sid in sorted(set(skills) | set(learned)):
                hours_learned = money(Decimal(sum(m for _, _, m in learned.get(sid, []))) / 60)
                rev = revenue_by_skill.get(sid, Decimal(0))
                lvl = min(100, int(hours_learned * 3) + (40 if sid in skills else 0) + self.rng.randint(0, 25))
                status = "generating_revenue" if rev > 0 else ("practicing" if lvl >= 40 else "learning")
                self.r.add("skill_progress",
                           ["freelancer_id", "skill_id", "level", "hours_learned", "revenue_from_skill",
                            "monetization_status", "first_revenue_date"],
                           (uid, sid, lvl, hours_learned, money(rev), status, first_revenue.get(sid)))
            self.profile_totals[uid] = (money(total), completed,
                                        (sum(ratings) / len(ratings)).quantize(CENT) if ratings else None)

    # -- marketplace -------------------------------------------------------------------------
    def marketplace(self) -> None:
        skill_names = self.skill_name
        freelancers_by_skill: dict[int, list[int]] = defaultdict(list)
        for uid, skills in self.freelancer_skills.items():
            for sid in skills:
                freelancers_by_skill[sid].append(uid)
        acme = next(c for c, o in self.client_owner.items() if o == self.demo_ids["dana"])
        months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December"]
        n_projects = self.n(2000, 60)
        for i in range(n_projects):
            pid = self.r.new_id("projects")
            client = acme if i < 8 else self.rng.choice(self.client_ids)
            if i < 8:
                primary = self.skill_ids[["React", "Figma", "Next.js", "UI Design", "TypeScript", "Shopify",
                                          "SEO", "Brand Identity"][i]]
            else:
                primary = self.rng.choice(list(self.skill_ids.values()))
            category = self.skill_category[primary]
            others = [s for s in self.skills_by_category[category] if s != primary]
            skills = [primary] + self.rng.sample(others, k=min(len(others), self.rng.randint(0, 2)))
            industry = self.rng.choice(INDUSTRIES)
            title = self.rng.choice(PROJECT_TEMPLATES).format(
                skill=skill_names[primary], industry=industry.lower(), month=self.rng.choice(months))
            level = self.rng.choices(["entry", "intermediate", "expert"], [3, 5, 2])[0]
            hours = self.rng.choice([8, 12, 20, 30, 40, 60, 80, 120, 160, 240, 320])
            complexity = "low" if hours < 40 else ("medium" if hours < 150 else "high")
            ptype = self.rng.choices(["fixed", "hourly", "milestone"], [45, 35, 20])[0]
            p25, p50, p75, _ = self.market[(primary, level)]
            if ptype == "hourly":
                bmin, bmax = money(p25), money(p75)
            else:
                budget = float(p50) * hours * self.rng.uniform(0.6, 1.1)
                bmin = money(round(budget * 0.85 / 10) * 10 or 10)
                bmax = money(max(float(bmin), round(budget * 1.15 / 10) * 10))
            status = "open" if i < 8 else self.rng.choices(
                ["open", "in_progress", "completed", "cancelled"], [70, 15, 12, 3])[0]
            deliverables = self.rng.choice([
                "Deliverables: source files, a short handover document and two rounds of revisions.",
                "We need weekly progress updates and a demo call at each milestone.",
                "Please share similar work you've done and your availability for the next month.",
                "Budget is firm; timeline is flexible for the right person.",
            ])
            description = (f"{industry} company looking for a {level} {skill_names[primary]} freelancer. "
                           f"Scope is about {hours} hours of work "
                           f"({'hourly contract' if ptype == 'hourly' else ptype + ' price'}). "
                           f"Skills: {', '.join(skill_names[s] for s in skills)}. {deliverables}")
            posted = _ts(AS_OF - timedelta(days=self.rng.randint(0, 120)), self.rng)
            self.r.add("projects",
                       ["id", "client_id", "title", "description", "project_type", "budget_min", "budget_max",
                        "estimated_hours", "experience_level", "complexity", "status", "posted_at"],
                       (pid, client, title, description, ptype, bmin, bmax, hours, level, complexity, status,
                        posted))
            for sid in skills:
                self.r.add("project_skills", ["project_id", "skill_id"], (pid, sid))
            if ptype == "milestone":
                parts = self.rng.randint(2, 4)
                weights = [self.rng.uniform(1, 3) for _ in range(parts)]
                amounts = [money(bmax * Decimal(str(w / sum(weights)))) for w in weights]
                amounts[-1] = bmax - sum(amounts[:-1])
                for pos, amount in enumerate(amounts, 1):
                    self.r.add("project_milestones", ["id", "project_id", "position", "title", "amount"],
                               (self.r.new_id("project_milestones"), pid, pos, f"Milestone {pos}", amount))
            candidates = freelancers_by_skill.get(primary) or list(self.freelancer_skills)
            bidders = self.rng.sample(candidates, k=min(len(candidates), self.rng.randint(0, 4)))
            if i < 8 and self.demo_ids["mateo"] not in bidders and i % 2 == 0:
                bidders.append(self.demo_ids["mateo"])
            accepted = bidders[0] if bidders and status in ("in_progress", "completed") else None
            for uid in bidders:
                rate = self.freelancer_rate[uid]
                if ptype == "hourly":
                    bid, btype = rate, "hourly"
                else:
                    bid, btype = money(min(float(bmax), max(float(bmin), float(rate) * hours * 0.9))), "fixed"
                if uid == accepted:
                    pstatus = "accepted"
                elif status == "open":
                    pstatus = self.rng.choices(["submitted", "shortlisted", "withdrawn"], [70, 20, 10])[0]
                else:
                    pstatus = "rejected"
                self.r.add("proposals",
                           ["id", "project_id", "freelancer_id", "cover_letter", "bid_amount", "bid_type",
                            "estimated_hours", "rationale", "status", "created_at"],
                           (self.r.new_id("proposals"), pid, uid,
                            f"Hi! I have hands-on {skill_names[primary]} experience and can start this week.",
                            bid, btype, hours, json.dumps({"source": "seed"}), pstatus,
                            posted + timedelta(hours=self.rng.randint(1, 72))))
                if uid == accepted and self.client_owner[client] is not None:
                    # hourly contracts are funded a week at a time (up to 40 hours), not the whole estimate
                    funded = bid * min(hours, 40) if btype == "hourly" else bid
                    self._order(self.client_owner[client], uid, pid, funded, status, posted)

    def _order(self, buyer: int, freelancer: int, project: int, amount: Decimal, status: str,
               when: datetime) -> None:
        amount = money(amount)
        rate = self.plan_rate[self.user_plan[freelancer]]
        commission = money(amount * rate)
        fee = money(amount * Decimal(str(CLIENT_FEE_RATE)))
        oid = self.r.new_id("orders")
        ostatus = "released" if status == "completed" else "in_escrow"
        self.r.add("orders",
                   ["id", "buyer_id", "freelancer_id", "project_id", "amount", "commission_rate",
                    "commission_amount", "client_fee", "status", "created_at"],
                   (oid, buyer, freelancer, project, amount, rate, commission, fee, ostatus,
                    when + timedelta(days=3)))
        cols = ["id", "order_id", "user_id", "kind", "amount", "status", "method", "created_at"]
        self.r.add("payments", cols, (self.r.new_id("payments"), oid, buyer, "escrow_funding", amount + fee,
                                      "completed", "card", when + timedelta(days=3)))
        if ostatus == "released":
            self.r.add("payments", cols, (self.r.new_id("payments"), oid, freelancer, "release",
                                          amount - commission, "completed", None, when + timedelta(days=30)))

    def gigs_and_withdrawals(self) -> None:
        skill_names = self.skill_name
        for uid, skills in self.freelancer_skills.items():
            if self.rng.random() < 0.4:
                sid = skills[0]
                price = money(self.freelancer_rate[uid] * self.rng.choice([3, 5, 8, 12]))
                self.r.add("gigs", ["id", "freelancer_id", "skill_id", "title", "price", "delivery_days", "active"],
                           (self.r.new_id("gigs"), uid, sid, f"I will deliver {skill_names[sid]} work fast",
                            price, self.rng.choice([2, 3, 5, 7, 14]), True))
            total = self.profile_totals[uid][0]
            if total > 200 and self.rng.random() < 0.5:
                self.r.add("payments", ["id", "order_id", "user_id", "kind", "amount", "status", "method",
                                        "created_at"],
                           (self.r.new_id("payments"), None, uid, "withdrawal", money(total * Decimal("0.1")),
                            "completed", self.rng.choice(["bank_transfer", "paypal", "wire"]),
                            _ts(AS_OF - timedelta(days=self.rng.randint(1, 90)), self.rng)))

    def build(self) -> _Rows:
        self.profile_totals: dict[int, tuple[Decimal, int, Decimal | None]] = {}
        self.plans_and_skills()
        self.people()
        self.learning_and_revenue()
        self.marketplace()
        self.gigs_and_withdrawals()
        self.staff()  # last: the data before it (and its ids) stay exactly as they were
        return self.r

    def staff(self) -> None:
        for demo in DEMO_STAFF:
            self._user(demo.handle, demo.name, demo.role, demo.plan, demo.note)


def _write(conn, rows: _Rows, totals: dict[int, tuple[Decimal, int, Decimal | None]]) -> None:
    order = list(reversed(SEEDED_TABLES))
    for table in order:
        if table not in rows.tables:
            continue
        columns, data = rows.tables[table]
        with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in data:
                copy.write_row(row)
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE freelancer_profiles SET total_revenue = %s, jobs_completed = %s, rating = %s WHERE user_id = %s",
            [(t, c, r, uid) for uid, (t, c, r) in totals.items()],
        )
    for table in order:
        if table in rows.next_ids:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )


def ensure_demo_staff(db: Database) -> None:
    """Demo data seeded before support agents existed gets them too (ids after everyone else's)."""
    with db.admin() as conn:
        for demo in DEMO_STAFF:
            conn.execute(
                """INSERT INTO users (id, handle, name, email, role, plan_id, country, verified, is_demo, demo_note)
                   SELECT (SELECT max(id) + 1 FROM users), %s, %s, %s, %s, %s, 'IE', true, true, %s
                   WHERE EXISTS (SELECT 1 FROM users WHERE is_demo)
                     AND NOT EXISTS (SELECT 1 FROM users WHERE handle = %s)""",
                (demo.handle, demo.name, f"{demo.handle}@example.com", demo.role, demo.plan, demo.note, demo.handle))
        conn.execute("SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))")


def is_seeded(db: Database) -> bool:
    with db.admin() as conn:
        return conn.execute("SELECT EXISTS (SELECT 1 FROM users) AS s").fetchone()["s"]


def seed(db: Database, *, scale: float = 1.0, seed_value: int = 42, reset: bool = False) -> SeedSummary:
    """Generate and write the demo dataset in one transaction (all or nothing)."""
    if not 0.01 <= scale <= 50:
        raise InvalidArgument(f"--scale must be between 0.01 and 50, got {scale}")
    if is_seeded(db) and not reset:
        ensure_demo_staff(db)
        return SeedSummary(counts=table_counts(db), already_seeded=True)
    generator = _Generator(scale, seed_value)
    rows = generator.build()
    with db.admin() as conn:
        if reset:
            conn.execute(f"TRUNCATE {', '.join(SEEDED_TABLES)} RESTART IDENTITY CASCADE")
        _write(conn, rows, generator.profile_totals)
    return SeedSummary(counts=table_counts(db))


def table_counts(db: Database) -> dict[str, int]:
    with db.admin() as conn:
        return {
            t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"]
            for t in ["skills", "market_rates", "users", "freelancer_profiles", "clients", "projects", "proposals",
                      "orders", "payments", "client_projects", "revenue_attributions", "learning_sessions",
                      "skill_progress", "gigs"]
        }
