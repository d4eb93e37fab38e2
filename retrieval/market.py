"""Market data as retrievable text: one document per skill, one chunk per segment summary.

So "what do Figma designers charge" finds the Figma rates by meaning; the numbers themselves stay
authoritative in `market_rates` (the agents' market-rates tool reads the table, not this text).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from retrieval.chunking import ParsedDocument, Section
from retrieval.ingest import IngestReport, PreparedDocument, ingest_documents
from store.db import Database

CORPUS = "market_data"
_SEGMENT_LABEL = {"entry": "entry-level", "intermediate": "intermediate", "expert": "expert"}


def market_documents(db: Database) -> list[PreparedDocument]:
    with db.admin() as conn:
        rows = conn.execute(
            """SELECT s.slug, s.name, s.category, m.* FROM market_rates m JOIN skills s ON s.id = m.skill_id
               ORDER BY s.slug, array_position(ARRAY['entry','intermediate','expert'], m.segment)"""
        ).fetchall()
    by_skill: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_skill[row["slug"]].append(row)
    prepared = []
    for slug, segments in by_skill.items():
        name, category = segments[0]["name"], segments[0]["category"]
        sections = []
        for r in segments:
            label = _SEGMENT_LABEL[r["segment"]]
            trend = f"{r['trend']} ({float(r['trend_pct']):+.1f}% over the last 12 months)"
            sections.append(Section(
                f"{label.capitalize()} {name} rates",
                f"{label.capitalize()} {name} freelancers ({category}) charge a median of ${r['p50']:.0f} per hour. "
                f"Hourly rate percentiles: 25th ${r['p25']:.0f}, 50th ${r['p50']:.0f}, 75th ${r['p75']:.0f}, "
                f"90th ${r['p90']:.0f}. Client demand is {r['demand_score']} out of 10 and the trend is {trend}. "
                f"Based on {r['sample_size']} contracts, updated {r['updated_on']:%Y-%m-%d}.",
            ))
        doc = ParsedDocument(
            source=f"market/{slug}", title=f"{name} market rates", sections=sections,
            metadata={"skill": slug, "category": category},
        )
        digest = hashlib.sha256(repr([(s.heading, s.text) for s in sections]).encode()).hexdigest()
        prepared.append(PreparedDocument(doc, digest))
    return prepared


def ingest_market_data(db: Database, *, progress: bool = True) -> IngestReport:
    return ingest_documents(db, CORPUS, market_documents(db), progress=progress)
