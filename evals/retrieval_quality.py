"""Retrieval quality on question sets written apart from the tuning: hit@5 per set, with the misses.

`python -m evals.retrieval_quality` (MENTOR_HOME set up) prints the numbers for the second
paraphrase set over the shipped corpora and for the held-out handbook (ingested on the fly).
"""

from __future__ import annotations

import sys

import yaml
from pydantic import BaseModel

from evals.heldout import HELDOUT_DIR, HELDOUT_SETS, ingest_heldout, load_heldout, remove_heldout
from retrieval.search import search
from store.db import Database


class SetResult(BaseModel):
    name: str
    hits: int
    total: int
    misses: list[tuple[str, list[str]]]


def _score(name: str, db: Database, cases: list[tuple[str, list[str]]], corpora: list[str] | None) -> SetResult:
    misses = []
    for question, wanted in cases:
        keys = [f"{h.source}#{h.anchor}" for h in search(db, question, corpora=corpora, k=5)]
        if not any(k.startswith(w) for k in keys for w in wanted):
            misses.append((question, keys))
    return SetResult(name=name, hits=len(cases) - len(misses), total=len(cases), misses=misses)


def paraphrase_set(db: Database) -> SetResult:
    spec = yaml.safe_load((HELDOUT_DIR / "paraphrases.yaml").read_text(encoding="utf-8"))
    return _score("shipped corpora, second paraphrase set", db,
                  [(c["question"], c["sources"]) for c in spec["cases"]], ["help_center", "curriculum"])


def heldout_set(db: Database, name: str) -> SetResult:
    spec = load_heldout(name)
    ingest_heldout(db, spec)
    try:
        return _score(f"held-out {spec.document}", db,
                      [(c.question, [f"heldout/{spec.document}#{c.source}"]) for c in spec.cases], [spec.corpus])
    finally:
        remove_heldout(db, spec)


def main() -> None:
    db = Database.connect()
    try:
        for result in (paraphrase_set(db), *(heldout_set(db, name) for name in HELDOUT_SETS)):
            print(f"{result.name}: hit@5 {result.hits}/{result.total}")
            for question, keys in result.misses:
                print(f"  miss: {question}\n        got: {keys}")
    finally:
        db.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
