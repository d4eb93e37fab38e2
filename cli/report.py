"""`mentor report stats|gaps`: the operator's figures and knowledge gaps, as `/api/admin` gives them."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import echo_json, handle_errors, open_db, report_app

Days = Annotated[int, typer.Option(min=1, max=366, help="Conversations started in the last N days (today is one).")]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


@report_app.command("stats")
@handle_errors
def stats(days: Days = 7, as_json: Annotated[bool, typer.Option("--json", help="Print the JSON of "
                                                                 "GET /api/admin/stats.")] = False) -> None:
    """Per persona: conversations, resolved / handed off / unresolved (one denominator), CSAT, latency, cost."""
    from agents.reports.stats import compute
    from core.settings import get_settings

    result = compute(open_db(), get_settings(), days)
    if as_json:
        echo_json(result.model_dump(mode="json"))
        return
    typer.echo(f"conversations started since {result.since:%Y-%m-%d} (UTC), {days} day(s)")
    typer.echo(f"{'persona':<16}{'convs':>6}{'turns':>6}{'resolved':>9}{'handoff':>8}{'unres.':>7}{'csat':>6}"
               f"{'unsupp.':>8}{'1st tok p50/p95 ms':>20}{'answer p50/p95 ms':>19}{'tokens in/out':>15}{'cost $':>10}")
    for persona, s in result.personas.items():
        typer.echo(f"{persona:<16}{s.conversations:>6}{s.turns:>6}{_pct(s.resolution_rate):>9}"
                   f"{_pct(s.handoff_rate):>8}{_pct(s.unresolved_rate):>7}{_pct(s.csat):>6}"
                   f"{_pct(s.unsupported_figure_rate):>8}"
                   f"{f'{s.first_token_ms.p50}/{s.first_token_ms.p95}':>20}{f'{s.answer_ms.p50}/{s.answer_ms.p95}':>19}"
                   f"{f'{s.tokens.prompt}/{s.tokens.completion}':>15}{s.cost_usd:>10.4f}")
        if s.handoffs_by_reason or s.unresolved_by_reason:
            reasons = ", ".join(f"{k} {v}" for k, v in {**s.handoffs_by_reason}.items())
            unresolved = ", ".join(f"{k} {v}" for k, v in s.unresolved_by_reason.items())
            typer.echo(f"{'':<16}handoffs: {reasons or '-'}; unresolved: {unresolved or '-'}; resolved: "
                       f"{s.resolution.confirmed} confirmed, {s.resolution.assumed} assumed")
    if not result.personas:
        typer.echo("no conversations yet (`mentor ask ... --persona support` records one)")


@report_app.command("gaps")
@handle_errors
def gaps(days: Days = 30, as_json: Annotated[bool, typer.Option("--json", help="Print the JSON of "
                                                                "GET /api/admin/gaps.")] = False,
         outline: Annotated[bool, typer.Option(help="Print each gap's draft article outline.")] = False) -> None:
    """Questions the bot failed (no answer, handed off, rated ≤ 2, re-asked), grouped, largest first."""
    from agents.reports.gaps import gaps as find

    found = find(open_db(), days)
    if as_json:
        echo_json([g.model_dump(mode="json") for g in found])
        return
    if not found:
        typer.echo(f"no failed questions in the last {days} days")
    for g in found:
        near = f"; nearest: {g.nearest[0].title} › {g.nearest[0].section} ({g.nearest[0].distance})" if g.nearest \
            else ""
        label = "article missed" if g.kind == "article_missed" else "no article"
        typer.echo(f"#{g.id}  {g.count}×  [{label}{', fixed' if g.fixed else ''}]  {g.representative}{near}")
        for q in g.questions[:5]:
            typer.echo(f"      {q.asked_at:%Y-%m-%d %H:%M}  {q.why:<10} {q.text[:90]}  ({q.conversation_id})")
        if outline:
            typer.echo("\n" + g.outline + "\n")
