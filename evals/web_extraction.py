"""How well an imported web page is reduced to its article (issue 27): over the held-out help-center pages
in evals/heldout/web_pages/, the share of the article's sentences indexed (`kept`) and the share of the
page's furniture — menus, breadcrumbs, ratings, related articles, footers — indexed with it (`leaked`), per
split, for the page as the site imports it (`main_content=True`), the whole page as a file upload reads it,
and trafilatura where installed (for comparison only; not a dependency).

    .venv/bin/python -m evals.web_extraction
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from retrieval.chunking import parse_html

PAGES = Path(__file__).resolve().parent / "heldout" / "web_pages"


def _ours(html: str, main_content: bool) -> str:
    title, sections = parse_html(html, "page", main_content=main_content)
    return "\n".join([title, *(" / ".join(s.path) + "\n" + s.text for s in sections)])


def _trafilatura(html: str) -> str | None:
    try:
        import trafilatura
    except ImportError:
        return None
    return trafilatura.extract(html, include_tables=True, include_comments=False) or ""


def score(extract) -> dict[str, dict[str, float]]:
    expected = yaml.safe_load((PAGES / "expected.yaml").read_text())
    totals: dict[str, dict[str, list[int]]] = {}
    for name, case in expected.items():
        text = extract((PAGES / name).read_text())
        if text is None:
            return {}
        split = totals.setdefault(case["split"], {"kept": [0, 0], "leaked": [0, 0]})
        split["kept"][0] += sum(k in text for k in case["keep"])
        split["kept"][1] += len(case["keep"])
        split["leaked"][0] += sum(d in text for d in case["drop"])
        split["leaked"][1] += len(case["drop"])
    return {s: {k: round(n / d, 3) for k, (n, d) in v.items()} for s, v in sorted(totals.items())}


def main() -> None:
    print(json.dumps({"import (main content)": score(lambda h: _ours(h, True)),
                      "whole page": score(lambda h: _ours(h, False)),
                      "trafilatura": score(_trafilatura) or "not installed"}, indent=2))


if __name__ == "__main__":
    main()
