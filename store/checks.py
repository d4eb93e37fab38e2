"""Consistency checks on revenue data, from the original platform guide.

Each check is a SQL query returning the offending rows; an empty result means it passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.db import Database

CHECKS: dict[str, str] = {
    "client project revenue = rate x hours (to the cent)": """
        SELECT id FROM client_projects WHERE abs(revenue - round(hourly_rate * hours, 2)) > 0.01""",
    "attributed revenue sums match profile totals": """
        SELECT fp.user_id FROM freelancer_profiles fp
        LEFT JOIN (SELECT freelancer_id, sum(amount) AS total FROM revenue_attributions GROUP BY 1) ra
               ON ra.freelancer_id = fp.user_id
        WHERE abs(fp.total_revenue - coalesce(ra.total, 0)) > 0.01""",
    "attributions of each client project sum to its revenue": """
        SELECT cp.id FROM client_projects cp
        LEFT JOIN (SELECT client_project_id, sum(amount) AS total FROM revenue_attributions GROUP BY 1) ra
               ON ra.client_project_id = cp.id
        WHERE abs(cp.revenue - coalesce(ra.total, 0)) > 0.01""",
    "skill revenue matches attributions": """
        SELECT sp.freelancer_id FROM skill_progress sp
        LEFT JOIN (SELECT freelancer_id, skill_id, sum(amount) AS total FROM revenue_attributions GROUP BY 1, 2) ra
               USING (freelancer_id, skill_id)
        WHERE abs(sp.revenue_from_skill - coalesce(ra.total, 0)) > 0.01""",
    "skill monetization status agrees with revenue": """
        SELECT freelancer_id FROM skill_progress
        WHERE (monetization_status = 'generating_revenue' AND revenue_from_skill = 0)
           OR (monetization_status <> 'generating_revenue' AND revenue_from_skill > 0)""",
    "hours learned match learning sessions": """
        SELECT sp.freelancer_id FROM skill_progress sp
        LEFT JOIN (SELECT freelancer_id, skill_id, sum(duration_minutes) / 60.0 AS h FROM learning_sessions
                   GROUP BY 1, 2) ls USING (freelancer_id, skill_id)
        WHERE abs(sp.hours_learned - coalesce(ls.h, 0)) > 0.01""",
    "order commission matches the freelancer's plan": """
        SELECT o.id FROM orders o JOIN users u ON u.id = o.freelancer_id
        JOIN subscription_plans p ON p.id = u.plan_id
        WHERE o.commission_rate <> p.commission_rate
           OR abs(o.commission_amount - round(o.amount * p.commission_rate, 2)) > 0.01""",
    "milestones sum to the project budget": """
        SELECT p.id FROM projects p JOIN project_milestones m ON m.project_id = p.id
        GROUP BY p.id, p.budget_max HAVING abs(sum(m.amount) - p.budget_max) > 0.01""",
}


@dataclass
class CheckResult:
    name: str
    failures: int

    @property
    def passed(self) -> bool:
        return self.failures == 0


def run_checks(db: Database) -> list[CheckResult]:
    with db.admin() as conn:
        return [
            CheckResult(name, conn.execute(f"SELECT count(*) AS n FROM ({sql}) bad").fetchone()["n"])
            for name, sql in CHECKS.items()
        ]
