"""One held-out help center through retrieval and the support persona, as numbers: hit@5, fact stated,
unsupported figures, off-topic questions handed to a person, and answers that still quote markup.

    MENTOR_HOME=/tmp/h .venv/bin/mentor setup --quiet
    MENTOR_HOME=/tmp/h .venv/bin/python benchmarks/heldout_report.py gigdock-questions.yaml

Uses the instance's database (MENTOR_HOME or DATABASE_URL); the held-out corpus is added, then removed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from evals.heldout import HELDOUT_SETS, load_heldout, remove_heldout, run_heldout  # noqa: E402
from store.db import Database  # noqa: E402

MARKUP = ("{%", "%}", "{{<", "{{%", ":::", "!!!", "&#x", "&nbsp;", "import ", "<Tab", "</", "{/*", "<!--")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", nargs="?", default=HELDOUT_SETS[0], help="a YAML file in evals/heldout/")
    parser.add_argument("--answers", action="store_true", help="print every answer too")
    args = parser.parse_args()
    db = Database.connect()
    spec = load_heldout(args.set)
    try:
        report = run_heldout(db, spec=spec)
    finally:
        remove_heldout(db, spec)
        db.close()
    print(json.dumps({"set": args.set, "cases": report.cases, "hits_at_5": report.hits_at_5,
                      "facts_in_answer": report.facts_in_answer, "unsupported_figures": report.unsupported_figures,
                      "off_topic_escalated": f"{report.off_topic_escalated}/{report.off_topic}",
                      "answers_with_markup": sum(any(m in r.answer for m in MARKUP) for r in report.results),
                      "tune_half": report.half("tune"), "report_half": report.half("report")}))
    if args.answers:
        for r in report.results:
            print(f"[{r.half}] rank={r.rank} fact={r.fact_in_answer} | {r.question}\n    {r.answer[:300]}")
        for u in report.unanswerable:
            print(f"[{u.half}] honest={u.honest} | {u.question}\n    {u.answer[:300]}")


if __name__ == "__main__":
    main()
