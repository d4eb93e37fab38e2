"""The re-ask threshold on its held-out pairs (evals/heldout/reasks.yaml): `python -m evals.reasks` prints
how many re-asks each half finds at REASK_SIMILARITY and how many different questions it takes for one."""

from __future__ import annotations

from pathlib import Path

import yaml

from agents.reports.stats import REASK_SIMILARITY, embed_texts


def reask_accuracy(half: str) -> tuple[int, int, int, int]:
    """On evals/heldout/reasks.yaml's `half`: (re-asks found, re-asks, different questions taken for re-asks,
    different questions)."""
    pairs = [p for p in yaml.safe_load((Path(__file__).parent / "heldout" / "reasks.yaml").read_text())["pairs"]
             if p["half"] == half]
    vectors = embed_texts([t for p in pairs for t in (p["a"], p["b"])])
    sims = [float(vectors[2 * i] @ vectors[2 * i + 1]) for i in range(len(pairs))]
    same = [s >= REASK_SIMILARITY for s, p in zip(sims, pairs, strict=True) if p["same"]]
    other = [s >= REASK_SIMILARITY for s, p in zip(sims, pairs, strict=True) if not p["same"]]
    return sum(same), len(same), sum(other), len(other)


if __name__ == "__main__":
    for half in ("tune", "report"):
        found, n_same, wrong, n_other = reask_accuracy(half)
        print(f"{half}: re-asks found {found}/{n_same}; different questions taken for re-asks {wrong}/{n_other}")
