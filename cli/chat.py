"""Talking to a persona from the terminal: `mentor ask` (one turn) and `mentor chat`."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import app, echo_json, handle_errors, open_db


def _turn_setup(persona: str, user: str | None):
    from agents.personas import get_persona
    from agents.providers import get_provider
    from retrieval.embedder import get_embedder
    from store.users import resolve_user

    db = open_db()
    get_persona(persona)
    user_row = resolve_user(db, user) if user else None
    get_embedder()  # loaded before the turn is stored: its latency is the answer's, not the model's start-up
    return db, get_provider(), user_row


def _open(db, user_id: int | None, persona: str, text: str, conversation_id: str | None, project: int | None,
          mode: str):
    """The terminal's turn stored as the server stores one (the message, the answer to come, its ack):
    `mentor ask` and `mentor chat` conversations are in the operator's reports (`mentor report stats`)."""
    import uuid

    from store.conversations import Caller, open_turn

    client_id = uuid.uuid4().hex
    return open_turn(db, Caller(user_id=user_id), persona=persona, text=text, client_id=client_id,
                     conversation_id=conversation_id, project_id=project, mode=mode, worker_id=None,
                     ack=lambda s: {"type": "ack", "client_id": client_id, "message_id": s.assistant_message_id,
                                    "user_message_id": s.user_message_id, "duplicate": False, "persona": persona,
                                    "text": text, "project_id": s.project_id, "mode": s.mode}).start


def _recorded(db, start, user_id: int | None, events):
    from store.events import recorded

    return recorded(db, start.conversation_id, user_id, start.assistant_message_id, events)


def _print_turn(events, as_json: bool) -> tuple[str, list]:
    """Stream a turn to the terminal; return the answer text and the events."""
    from cli.render import summarize

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
        echo_json([e.model_dump() for e in collected])
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
    uid = user_row["id"] if user_row else None
    mode = "simulate_client" if simulate else "chat"
    start = _open(db, uid, persona, text, None, project, mode)
    req = TurnRequest(persona=persona, text=text, user_id=uid, project_id=project, mode=mode,
                      conversation_id=start.conversation_id)
    _, events = _print_turn(_recorded(db, start, uid, run_turn(req, db=db, provider=provider)), as_json)
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
    conversation: str | None = None
    while True:
        try:
            text = input("\n> ").strip()
        except EOFError:
            break
        if text in ("/quit", "/exit"):
            break
        if not text:
            continue
        uid = user_row["id"] if user_row else None
        mode = "simulate_client" if simulate else "chat"
        start = _open(db, uid, persona, text, conversation, project, mode)
        conversation = start.conversation_id
        req = TurnRequest(persona=persona, text=text, user_id=uid, project_id=project, mode=mode, history=history,
                          conversation_id=conversation)
        answer, _ = _print_turn(_recorded(db, start, uid, run_turn(req, db=db, provider=provider)), as_json=False)
        history += [HistoryMessage(role="user", content=text), HistoryMessage(role="assistant", content=answer)]
