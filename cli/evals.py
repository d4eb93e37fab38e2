"""`mentor eval`: the eval sets through a provider, with thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import app, handle_errors, open_db


@app.command("eval")
@handle_errors
def eval_command(
    persona: Annotated[list[str] | None, typer.Option("--persona", help="Only this persona (repeatable).")] = None,
    provider: Annotated[str, typer.Option(help="composer (the offline default answerer), scripted (a deterministic "
                                                "tool-calling model), local (bundled SmolLM2) or openai.")]
    = "composer",
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report instead of the table.")] = False,
    report: Annotated[Path | None, typer.Option(help="Where to write the JSON report "
                                                     "(default: MENTOR_HOME/evals/report-PROVIDER.json).")] = None,
    check: Annotated[bool, typer.Option(help="Exit 1 if a threshold in evals/thresholds.yaml is not met.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N cases of each persona (slow models).")]
    = None,
) -> None:
    """Run the eval sets through the real runtime and database; print metrics per persona."""
    from core.settings import get_settings
    from evals.cases import load_sets
    from evals.runner import check_thresholds, eval_provider, format_table, load_thresholds, run_evals

    sets = load_sets(personas=persona or None)
    if limit:
        sets = [s.model_copy(update={"cases": s.cases[:limit]}) for s in sets]
    model = eval_provider(provider)
    total = sum(len(s.cases) for s in sets)
    done = 0

    def progress(persona_id: str, result) -> None:
        nonlocal done
        done += 1
        typer.echo(f"\r[{done}/{total}] {persona_id}: {result.id}".ljust(70), err=True, nl=False)

    result = run_evals(open_db(), model, sets, progress=progress)
    typer.echo("", err=True)
    result.failures = check_thresholds(result, load_thresholds())
    path = report or get_settings().mentor_home / "evals" / f"report-{provider}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    if as_json:
        typer.echo(result.model_dump_json(indent=2, exclude={"cases"}))
    else:
        typer.echo(f"provider: {result.provider}\n")
        typer.echo(format_table(result))
        for failure in result.failures:
            typer.echo(f"below threshold: {failure}")
        typer.echo(f"\nreport: {path}")
    if check and result.failures:
        raise typer.Exit(1)
