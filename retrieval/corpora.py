"""The registry of knowledge corpora (table `corpora`): names are checked before anything is read."""

from __future__ import annotations

import re

from core.errors import InvalidArgument, UnknownCorpus
from store.db import Database

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,40}$")


def list_corpora(db: Database) -> dict[str, str]:
    with db.service() as conn:
        return {r["name"]: r["description"] for r in conn.execute("SELECT name, description FROM corpora ORDER BY 1")}


_known: dict[str, set[str]] = {}  # database url -> corpus names seen to exist (corpora are never removed)


def require_corpora(db: Database, names: list[str]) -> None:
    """Every name must be a registered corpus. Names once seen are remembered (every search checks them);
    an unknown name is looked up again before it is refused, so a corpus added meanwhile is found."""
    if set(names) <= _known.get(db.url, set()):
        return
    known = list_corpora(db)
    _known[db.url] = set(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UnknownCorpus(
            f"unknown corpus {', '.join(repr(n) for n in unknown)}; known: {', '.join(known)} "
            "(add one with `mentor corpus add NAME`)"
        )


def add_corpus(db: Database, name: str, description: str, public: bool = True) -> bool:
    """Register a corpus; returns False if it already existed."""
    if not _NAME.match(name):
        raise InvalidArgument(f"corpus name {name!r} must be lower case letters, digits or _, 2-41 characters")
    with db.admin() as conn:
        cur = conn.execute(
            "INSERT INTO corpora (name, description, public) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (name, description, public),
        )
        return cur.rowcount == 1
