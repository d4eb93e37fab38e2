"""Data and administration: migrations, demo data, knowledge, users, widget sites, tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import app, corpus_app, db_app, echo_json, handle_errors, open_db, sites_app, staff_app
from core.errors import InvalidArgument


@db_app.command("migrate")
@handle_errors
def db_migrate() -> None:
    """Apply pending SQL migrations in order (re-running is a no-op)."""
    from store.migrate import migrate

    applied = migrate(open_db())
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

    results = run_checks(open_db())
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

    db = open_db()
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

    rows = list_demo_users(open_db())
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['id']:>4}  {r['handle']:<8} {r['name']:<18} {r['role']:<10} {r['note']}")


@app.command()
@handle_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Markdown (.md, .mdx, .markdown: GitBook, Docusaurus, MkDocs, "
                                                     "Hugo and Jekyll dialects too), text or HTML files, or folders "
                                                     "of them.")],
    corpus: Annotated[str, typer.Option(help="Corpus to add the documents to (see `mentor corpus list`).")],
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Chunk, embed and index documents; unchanged files are skipped, changed ones replaced."""
    from retrieval.ingest import ingest_paths

    report = ingest_paths(open_db(), paths, corpus, progress=not quiet)
    typer.echo(
        f"{report.corpus}: {report.files} files ({report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged), {report.chunks_written} chunks written, "
        f"{report.embedded} embedded in {report.seconds}s"
    )
    if report.dialects:
        typer.echo("markdown dialects: " + ", ".join(f"{name} {n}" for name, n in sorted(report.dialects.items())))
    for name, why in report.skipped:
        typer.echo(f"skipped {name}: {why}")


@app.command("ingest-market")
@handle_errors
def ingest_market(quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False) -> None:
    """Embed the market-rate table as text (one chunk per skill and segment) into `market_data`."""
    from retrieval.market import ingest_market_data

    report = ingest_market_data(open_db(), progress=not quiet)
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

    hits = run_search(open_db(), text, corpora=corpus or None, k=k, metadata=_parse_filters(filter_ or []) or None)
    if as_json:
        echo_json([h.model_dump() for h in hits])
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

    with open_db().admin() as conn:
        rows = corpus_stats(conn)
    for row in rows:
        typer.echo(f"{row['name']:<14} {row['documents']:>5} docs {row['chunks']:>7} chunks  {row['description']}")


@corpus_app.command("add")
@handle_errors
def corpus_add(
    name: Annotated[str, typer.Argument(help="Lower-case name, e.g. case_studies.")],
    description: Annotated[str, typer.Option(help="What the corpus holds.")] = "",
) -> None:
    """Register a new corpus so documents can be ingested into it."""
    from retrieval.corpora import add_corpus

    created = add_corpus(open_db(), name, description or name)
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

    db = open_db()
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

    db = open_db()
    for question in ("what do Figma designers charge?", "how long until I can withdraw my earnings?",
                     "how should I answer a client who wants more work for the same price?"):
        typer.echo(f"\n? {question}")
        for h in run_search(db, question, k=3):
            typer.echo(f"  - [{h.corpus}] {h.title} › {h.section}")




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

    site = add_site(open_db(), name, origin, first_party=first_party)
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

    site = set_first_party(open_db(), site_id, not off)
    typer.echo(f"{site['name']}: {'first' if site['first_party'] else 'third'}-party")


@sites_app.command("list")
@handle_errors
def sites_list() -> None:
    """Show registered sites and their allowed origins."""
    from server.auth import list_sites

    for site in list_sites(open_db()):
        party = "first-party" if site["first_party"] else "third-party"
        typer.echo(f"{site['id']:>3}  {site['site_key']}  {site['name']:<12} {party:<11}  {', '.join(site['origins'])}")


@staff_app.command("list")
@handle_errors
def staff_list() -> None:
    """Show support agents and admins."""
    from store.handoffs import list_staff

    for row in list_staff(open_db()):
        typer.echo(f"{row['id']:>5}  {row['handle']:<16} {row['role']:<6} {row['name']}")


@staff_app.command("add")
@handle_errors
def staff_add(
    user: Annotated[str, typer.Argument(help="The user's id or handle.")],
    role: Annotated[str, typer.Option(help="agent or admin.")] = "agent",
) -> None:
    """Give a user the inbox: role agent (or admin)."""
    from store.handoffs import set_staff_role

    row = set_staff_role(open_db(), user, role)
    typer.echo(f"{row['handle']} is now {row['role']}")


@staff_app.command("remove")
@handle_errors
def staff_remove(user: Annotated[str, typer.Argument(help="The user's id or handle.")]) -> None:
    """Take the inbox away (back to freelancer); their open inbox sockets lose access at their next event."""
    from store.handoffs import set_staff_role

    row = set_staff_role(open_db(), user, None)
    typer.echo(f"{row['handle']} is no longer support staff")


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

    row = resolve_user(open_db(), user)
    typer.echo(issue_token(get_settings(), row["id"], ttl))
