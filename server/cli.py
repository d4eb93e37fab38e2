"""`mentor` — the command line for the service.

Every command turns a MentorError (bad input, broken environment) into one `error: ...` line on
stderr and a non-zero exit code, never a traceback, and has `--help`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from core.errors import InvalidArgument, MentorError

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
warnings.filterwarnings("ignore", module="platformdirs")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(help="AI mentor and chat-agent service.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database: migrations and consistency checks.", no_args_is_help=True)
corpus_app = typer.Typer(help="Knowledge corpora.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(corpus_app, name="corpus")

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MentorError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def _db():  # type: ignore[no-untyped-def]
    """One connected database per process (commands run once; tests invoke many in-process)."""
    from store.db import Database

    return Database.connect()


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@db_app.command("migrate")
@handle_errors
def db_migrate() -> None:
    """Apply pending SQL migrations in order (re-running is a no-op)."""
    from store.migrate import migrate

    applied = migrate(_db())
    if applied:
        for m in applied:
            typer.echo(f"applied {m.version:04d}_{m.name}")
    else:
        typer.echo("database is up to date")


@db_app.command("check")
@handle_errors
def db_check() -> None:
    """Run the revenue-data consistency checks; exit 1 if any fails."""
    from store.checks import run_checks

    results = run_checks(_db())
    for r in results:
        typer.echo(f"{'PASS' if r.passed else 'FAIL'}  {r.name}" + ("" if r.passed else f" ({r.failures} rows)"))
    if not all(r.passed for r in results):
        raise typer.Exit(1)


@app.command()
@handle_errors
def seed(
    scale: Annotated[float, typer.Option(help="Size multiplier (1.0 = 500 freelancers, 2,000 projects).")] = 1.0,
    seed_value: Annotated[int, typer.Option("--seed", help="Random seed; same seed and scale, same data.")] = 42,
    reset: Annotated[bool, typer.Option(help="Delete existing marketplace, revenue and conversation data.")] = False,
) -> None:
    """Load the deterministic demo dataset (skills, market data, freelancers, projects, revenue)."""
    from store.migrate import migrate
    from store.seed import seed as run_seed

    db = _db()
    migrate(db)
    summary = run_seed(db, scale=scale, seed_value=seed_value, reset=reset)
    if summary.already_seeded:
        typer.echo("already seeded (use --reset to rebuild the demo data)")
    typer.echo(", ".join(f"{k}={v}" for k, v in summary.counts.items()))


@app.command()
@handle_errors
def users(as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False) -> None:
    """List the named demo users the personas can talk to."""
    from store.users import list_demo_users

    rows = list_demo_users(_db())
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['id']:>4}  {r['handle']:<8} {r['name']:<18} {r['role']:<10} {r['note']}")


@app.command()
@handle_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Markdown, text or HTML files, or folders of them.")],
    corpus: Annotated[str, typer.Option(help="Corpus to add the documents to (see `mentor corpus list`).")],
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Chunk, embed and index documents; unchanged files are skipped, changed ones replaced."""
    from retrieval.ingest import ingest_paths

    report = ingest_paths(_db(), paths, corpus, progress=not quiet)
    typer.echo(
        f"{report.corpus}: {report.files} files ({report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged), {report.chunks_written} chunks written, "
        f"{report.embedded} embedded in {report.seconds}s"
    )


@app.command("ingest-market")
@handle_errors
def ingest_market(quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False) -> None:
    """Embed the market-rate table as text (one chunk per skill and segment) into `market_data`."""
    from retrieval.market import ingest_market_data

    report = ingest_market_data(_db(), progress=not quiet)
    typer.echo(f"market_data: {report.files} skills, {report.chunks_written} chunks written, "
               f"{report.embedded} embedded in {report.seconds}s")


def _parse_filters(filters: list[str]) -> dict[str, str]:
    out = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--filter expects KEY=VALUE, got {item!r}")
        out[key] = value
    return out


@app.command()
@handle_errors
def search(
    text: Annotated[str, typer.Argument(help="What to look for, in your own words.")],
    corpus: Annotated[list[str] | None, typer.Option(help="Limit to a corpus (repeatable).")] = None,
    k: Annotated[int, typer.Option(help="Number of results.")] = 5,
    filter_: Annotated[list[str] | None, typer.Option("--filter", help="Metadata KEY=VALUE (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Hybrid (vector + full-text) search over the knowledge corpora."""
    from retrieval.search import search as run_search

    hits = run_search(_db(), text, corpora=corpus or None, k=k, metadata=_parse_filters(filter_ or []) or None)
    if as_json:
        _echo_json([h.model_dump() for h in hits])
        return
    if not hits:
        typer.echo("no results")
    for i, h in enumerate(hits, 1):
        snippet = " ".join(h.text.split())[:160]
        typer.echo(f"{i}. [{h.corpus}] {h.title} › {h.section}  ({h.source}#{h.anchor}, score {h.score:.4f})")
        typer.echo(f"   {snippet}")


@corpus_app.command("list")
@handle_errors
def corpus_list() -> None:
    """Show the registered corpora and how many chunks each holds."""
    from store.knowledge import corpus_stats

    for row in corpus_stats(_db()):
        typer.echo(f"{row['name']:<14} {row['documents']:>5} docs {row['chunks']:>7} chunks  {row['description']}")


@corpus_app.command("add")
@handle_errors
def corpus_add(
    name: Annotated[str, typer.Argument(help="Lower-case name, e.g. case_studies.")],
    description: Annotated[str, typer.Option(help="What the corpus holds.")] = "",
) -> None:
    """Register a new corpus so documents can be ingested into it."""
    from retrieval.corpora import add_corpus

    created = add_corpus(_db(), name, description or name)
    typer.echo(f"corpus {name} {'added' if created else 'already exists'}")


@app.command()
@handle_errors
def setup(
    scale: Annotated[float, typer.Option(help="Demo dataset size multiplier.")] = 1.0,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Everything a fresh MENTOR_HOME needs: migrations, demo data, shipped corpora, market data."""
    from retrieval.ingest import ingest_paths
    from retrieval.market import ingest_market_data
    from store.catalog import CORPUS_DIR
    from store.migrate import migrate
    from store.seed import seed as run_seed

    db = _db()
    applied = migrate(db)
    typer.echo(f"migrations: {len(applied)} applied")
    summary = run_seed(db, scale=scale)
    typer.echo("demo data: " + ("already present" if summary.already_seeded else
                                f"{summary.counts['users']} users, {summary.counts['projects']} projects"))
    for corpus in ("curriculum", "help_center"):
        r = ingest_paths(db, [CORPUS_DIR / corpus], corpus, progress=not quiet)
        typer.echo(f"{corpus}: {r.files} files, {r.embedded} chunks embedded, {r.unchanged} unchanged")
    r = ingest_market_data(db, progress=not quiet)
    typer.echo(f"market_data: {r.files} skills, {r.embedded} chunks embedded, {r.unchanged} unchanged")


@app.command()
@handle_errors
def demo() -> None:
    """Run a few example searches against the embedded instance (what the personas will retrieve)."""
    from retrieval.search import search as run_search

    db = _db()
    for question in ("what do Figma designers charge?", "how long until I can withdraw my earnings?",
                     "how should I answer a client who wants more work for the same price?"):
        typer.echo(f"\n? {question}")
        for h in run_search(db, question, k=3):
            typer.echo(f"  - [{h.corpus}] {h.title} › {h.section}")


def _turn_setup(persona: str, user: str | None):  # type: ignore[no-untyped-def]
    from agents.personas import get_persona
    from agents.providers import get_provider
    from store.users import resolve_user

    db = _db()
    get_persona(persona)
    user_row = resolve_user(db, user) if user else None
    return db, get_provider(), user_row


def _print_turn(events, as_json: bool) -> tuple[str, list]:  # type: ignore[no-untyped-def]
    """Stream a turn to the terminal; return the answer text and the events."""
    from server.render import summarize

    collected, answer, started, mid_line = [], [], False, False
    for event in events:
        collected.append(event)
        if as_json:
            continue
        if event.type == "token":
            if not started:
                typer.echo("")
                started = True
            answer.append(event.delta)
            typer.echo(event.delta, nl=False)
            mid_line = not event.delta.endswith("\n")
        elif event.type == "tool_call":
            if mid_line:
                typer.echo("")  # end the streamed line before a tool line
                mid_line = False
            args = ", ".join(f"{k}={v}" for k, v in event.args.items() if k not in ("cover_letter", "rationale"))
            typer.secho(f"[tool] {event.name}({args})", fg="cyan", err=True)
        elif event.type == "tool_result":
            line = f"  → error: {event.error}" if event.error else f"  → {summarize(event.name, event.data)}"
            typer.secho(line, fg="red" if event.error else "cyan", err=True)
        elif event.type == "handoff":
            typer.secho(f"[handoff] support ticket #{event.ticket_id} ({event.reason})", fg="yellow", err=True)
        elif event.type == "answer_replaced":
            answer.clear()
            typer.echo("")
            typer.secho(f"[replaced] the answer stated figures no source holds ({', '.join(event.unsupported)}); "
                        f"{event.by} answers instead:", fg="yellow", err=True)
        elif event.type == "error":
            typer.secho(f"[error] {event.code}: {event.message}", fg="red", err=True)
        elif event.type == "done":
            typer.echo("")
            for c in (e for e in collected if e.type == "citation"):
                typer.secho(f"  [{c.index}] {c.title} › {c.section} ({c.source}#{c.anchor})", fg="green")
            u = event.usage
            typer.secho(f"  ({event.provider}; {u.prompt_tokens}+{u.completion_tokens} tokens, {u.counted}; "
                        f"{event.finish_reason})", dim=True, err=True)
            if event.grounding and event.grounding.unsupported:
                typer.secho(f"  [grounding] not in the evidence: {', '.join(event.grounding.unsupported)}",
                            fg="red", err=True)
    if as_json:
        _echo_json([e.model_dump() for e in collected])
    return "".join(answer), collected


@app.command()
@handle_errors
def ask(
    text: Annotated[str, typer.Argument(help="Your question or message.")],
    persona: Annotated[str, typer.Option(help="marcus, sarah, david, proposal_writer, support, ...")],
    user: Annotated[str | None, typer.Option(help="Demo user id or handle (see `mentor users`).")] = None,
    project: Annotated[int | None, typer.Option(help="Marketplace project id (proposal writer, simulation).")] = None,
    simulate: Annotated[bool, typer.Option(help="Sarah plays the client of --project.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list of events as JSON.")] = False,
) -> None:
    """Run one turn end to end with the configured model and print the streamed answer."""
    from agents.requests import TurnRequest
    from agents.runtime import run_turn

    db, provider, user_row = _turn_setup(persona, user)
    req = TurnRequest(persona=persona, text=text, user_id=user_row["id"] if user_row else None,
                      project_id=project, mode="simulate_client" if simulate else "chat")
    _, events = _print_turn(run_turn(req, db=db, provider=provider), as_json)
    if any(e.type == "error" for e in events):
        raise typer.Exit(1)


@app.command()
@handle_errors
def chat(
    persona: Annotated[str, typer.Option(help="marcus, sarah, david, proposal_writer, support, ...")],
    user: Annotated[str | None, typer.Option(help="Demo user id or handle (see `mentor users`).")] = None,
    project: Annotated[int | None, typer.Option(help="Marketplace project id (proposal writer, simulation).")] = None,
    simulate: Annotated[bool, typer.Option(help="Sarah plays the client of --project.")] = False,
) -> None:
    """Interactive terminal chat that keeps the conversation history (/quit or Ctrl-D to leave)."""
    from agents.requests import HistoryMessage, TurnRequest
    from agents.runtime import run_turn

    db, provider, user_row = _turn_setup(persona, user)
    typer.secho(f"Chatting with {persona} using {provider.name}. /quit to leave.", dim=True)
    history: list[HistoryMessage] = []
    while True:
        try:
            text = input("\n> ").strip()
        except EOFError:
            break
        if text in ("/quit", "/exit"):
            break
        if not text:
            continue
        req = TurnRequest(persona=persona, text=text, user_id=user_row["id"] if user_row else None,
                          project_id=project, mode="simulate_client" if simulate else "chat", history=history)
        answer, _ = _print_turn(run_turn(req, db=db, provider=provider), as_json=False)
        history += [HistoryMessage(role="user", content=text), HistoryMessage(role="assistant", content=answer)]


sites_app = typer.Typer(help="Sites that embed the support widget.", no_args_is_help=True)
app.add_typer(sites_app, name="sites")


@sites_app.command("add")
@handle_errors
def sites_add(
    origin: Annotated[list[str], typer.Option(help="Allowed page origin, e.g. https://example.com (repeatable).")],
    name: Annotated[str, typer.Option(help="A name for the site.")] = "site",
    first_party: Annotated[bool, typer.Option("--first-party", help="The marketplace's own pages: its tokens' "
                                              "`sub` is a marketplace user id (default: the site's own users)")]
    = False,
) -> None:
    """Register a site: prints its site key (the widget's data-site-key), then its secret, shown this once:
    the site signs its signed-in users' tokens with it (HS256, `sub`, `exp`) for data-user-token. A
    third-party site's `sub` is its own user id, a support identity of that site only; a first-party
    site's `sub` is a marketplace user id, whose account and orders the support bot then reads."""
    from server.auth import add_site

    site = add_site(_db(), name, origin, first_party=first_party)
    typer.echo(site["site_key"])
    typer.echo(f"secret (shown once; sign your users' widget tokens with it): {site['secret']}")
    typer.echo("first-party: sub = a marketplace user id" if first_party else
               "third-party: sub = your own user id (a support identity on this site only)")


@sites_app.command("first-party")
@handle_errors
def sites_first_party(
    site_id: Annotated[int, typer.Argument(help="The site's id (mentor sites list).")],
    off: Annotated[bool, typer.Option("--off", help="Make it third-party again.")] = False,
) -> None:
    """Mark a site first-party (its signed `sub` is a marketplace user id), or third-party with --off."""
    from server.auth import set_first_party

    site = set_first_party(_db(), site_id, not off)
    typer.echo(f"{site['name']}: {'first' if site['first_party'] else 'third'}-party")


@sites_app.command("list")
@handle_errors
def sites_list() -> None:
    """Show registered sites and their allowed origins."""
    from server.auth import list_sites

    for site in list_sites(_db()):
        party = "first-party" if site["first_party"] else "third-party"
        typer.echo(f"{site['id']:>3}  {site['site_key']}  {site['name']:<12} {party:<11}  {', '.join(site['origins'])}")


@app.command()
@handle_errors
def token(
    user: Annotated[str, typer.Argument(help="Demo user id or handle.")],
    ttl: Annotated[int | None, typer.Option(help="Lifetime in seconds (default MENTOR_JWT_TTL).")] = None,
) -> None:
    """Print a signed JWT for a user (for the chat page, REST, /v1 and the WebSocket)."""
    from core.settings import get_settings
    from server.auth import issue_token
    from store.users import resolve_user

    row = resolve_user(_db(), user)
    typer.echo(issue_token(get_settings(), row["id"], ttl))


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

    def progress(persona_id: str, result) -> None:  # type: ignore[no-untyped-def]
        nonlocal done
        done += 1
        typer.echo(f"\r[{done}/{total}] {persona_id}: {result.id}".ljust(70), err=True, nl=False)

    result = run_evals(_db(), model, sets, progress=progress)
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


@app.command()
@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (uvicorn's process manager restarts any that "
                                              "die); they share one PostgreSQL.", min=1, max=64)] = 1,
) -> None:
    """Start the web service (chat page, widget, WebSocket, REST, /v1) under uvicorn."""
    import socket

    import uvicorn

    from server import logs

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InvalidArgument(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    logs.configure()
    os.environ["MENTOR_PORT"] = str(port)  # the demo site's default origin (MENTOR_PUBLIC_URL overrides it)
    # uvicorn shuts down on SIGTERM, then re-raises it under the handler it found: make that a normal exit,
    # so exit hooks run (the embedded PostgreSQL this process started is stopped, not left behind)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    # Token frames are a few bytes: per-message deflate costs CPU on every frame and saves nothing.
    # The client's address behind a balancer is the app's decision (MENTOR_TRUSTED_PROXIES, server/app.py),
    # not uvicorn's default trust of X-Forwarded-For from 127.0.0.1.
    options = dict(host=host, port=port, log_config=None, ws="websockets-sansio", ws_per_message_deflate=False,
                   proxy_headers=False)
    if workers == 1:
        from server.app import create_app

        uvicorn.run(create_app(tune_gc=True), **options)
        return
    _prepare_shared_database()
    # Each of several workers on one host does best with fewer setup slots than a lone worker: on 2 cores,
    # --workers 2, 64 each beat both 48 and 96 each in every pair run back to back (burst_pairs.py).
    os.environ.setdefault("MENTOR_TURN_SETUP_SLOTS", "64")
    uvicorn.run("server.app:worker_app", factory=True, workers=workers, **options)


def _prepare_shared_database() -> None:
    """Before the workers start: one database for all of them (the embedded one is started here, once, and
    handed to them as DATABASE_URL), migrated once, the demo site registered once."""
    from core.settings import get_settings
    from server.app import demo_origins, ensure_demo_site
    from store.migrate import migrate

    settings = get_settings()
    database = _db()
    migrate(database)
    if settings.demo:
        ensure_demo_site(database, demo_origins(settings))
    os.environ["DATABASE_URL"] = database.url
    get_settings.cache_clear()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        app()
    finally:
        # Close the pool before the exit hook stops the embedded PostgreSQL; otherwise the
        # pool's reconnect thread can race the shutdown and log "terminating connection" warnings.
        if _db.cache_info().currsize:
            _db().close()


if __name__ == "__main__":
    main()
