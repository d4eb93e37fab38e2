"""Read Markdown, plain-text and HTML files into sections, then into token-bounded chunks.

Headings become section titles (with a URL anchor) so a citation can point at the right part of a
document. Chunks are cut on paragraph boundaries where possible and never exceed the token budget
(tiktoken's cl100k_base, see retrieval/tokens.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from retrieval.tokens import count_tokens, encoding
from store.errors import IngestError

SUPPORTED = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".html": "html", ".htm": "html"}
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def anchor_for(heading: str) -> str:
    """GitHub-style anchor: lower case, punctuation dropped, spaces to dashes."""
    slug = re.sub(r"[^\w\- ]", "", heading.lower()).strip()
    return re.sub(r"\s+", "-", slug)


@dataclass
class Section:
    heading: str
    text: str


@dataclass
class ParsedDocument:
    source: str
    title: str
    sections: list[Section]
    metadata: dict = field(default_factory=dict)


@dataclass
class Chunk:
    ordinal: int
    title: str
    section: str
    anchor: str
    text: str
    token_count: int
    metadata: dict


def _front_matter(text: str) -> tuple[dict, str]:
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            try:
                meta = yaml.safe_load(text[4:end]) or {}
            except yaml.YAMLError as exc:
                raise IngestError(f"bad front matter: {exc}") from None
            if isinstance(meta, dict):
                return {str(k): v for k, v in meta.items()}, text[end + 4 :].lstrip("\n")
    return {}, text


def parse_markdown(text: str, fallback_title: str) -> tuple[str, list[Section]]:
    title = None
    sections: list[Section] = []
    heading, lines = "", []
    in_code = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match:
            if "\n".join(lines).strip():
                sections.append(Section(heading, "\n".join(lines).strip()))
            level, heading_text = len(match.group(1)), match.group(2).strip()
            if level == 1 and title is None:
                title, heading = heading_text, ""
            else:
                heading = heading_text
            lines = []
        else:
            lines.append(line)
    if "\n".join(lines).strip():
        sections.append(Section(heading, "\n".join(lines).strip()))
    return title or fallback_title, sections


def parse_html(text: str, fallback_title: str) -> tuple[str, list[Section]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "nav", "footer", "noscript"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else None
    sections: list[Section] = []
    heading, parts = "", []
    body = soup.body or soup
    for el in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "blockquote"]):
        content = el.get_text(" ", strip=True)
        if not content:
            continue
        if el.name.startswith("h"):
            if parts:
                sections.append(Section(heading, "\n\n".join(parts)))
            if el.name == "h1" and not title:
                title, heading = content, ""
            else:
                heading = content
            parts = []
        else:
            parts.append(("- " if el.name == "li" else "") + content)
    if parts:
        sections.append(Section(heading, "\n\n".join(parts)))
    return title or fallback_title, sections


def read_document(path: Path, source: str) -> ParsedDocument:
    """Parse one file; raise IngestError naming the file for anything unreadable or empty."""
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        raise IngestError(f"{path}: unsupported file type (use .md, .txt or .html)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IngestError(f"{path}: not UTF-8 text") from None
    if "\x00" in text:
        raise IngestError(f"{path}: looks like a binary file")
    fallback = path.stem.replace("-", " ").replace("_", " ").strip().capitalize()
    metadata, body = _front_matter(text) if kind == "markdown" else ({}, text)
    if kind == "markdown":
        title, sections = parse_markdown(body, fallback)
    elif kind == "html":
        title, sections = parse_html(body, fallback)
    else:
        title, sections = fallback, [Section("", body.strip())] if body.strip() else []
    title = str(metadata.pop("title", title))
    if not sections:
        raise IngestError(f"{path}: file is empty (no text to index)")
    return ParsedDocument(source=source, title=title, sections=sections, metadata=metadata)


def _split_long(paragraph: str, budget: int) -> list[str]:
    """Split one over-long paragraph into pieces of at most `budget` tokens."""
    tokens = encoding().encode(paragraph, disallowed_special=())
    return [encoding().decode(tokens[i : i + budget]) for i in range(0, len(tokens), budget)]


def chunk_document(doc: ParsedDocument, *, max_tokens: int = 200, overlap: int = 30) -> list[Chunk]:
    """Pack each section's paragraphs into chunks of at most `max_tokens` (heading context included).

    A section never shares a chunk with another, so every chunk has exactly one section title.
    Consecutive chunks of one section overlap by up to `overlap` tokens of trailing paragraph text.
    """
    chunks: list[Chunk] = []
    for section in doc.sections:
        header = f"{doc.title} — {section.heading}" if section.heading else doc.title
        budget = max(32, max_tokens - count_tokens(header) - 2)
        paragraphs: list[str] = []
        for para in re.split(r"\n\s*\n", section.text):
            para = para.strip()
            if para:
                paragraphs.extend(_split_long(para, budget) if count_tokens(para) > budget else [para])
        current: list[str] = []
        size = 0
        for para in paragraphs:
            n = count_tokens(para)
            if current and size + n + 2 > budget:
                chunks.append(_make_chunk(doc, section, header, current, len(chunks)))
                tail = current[-1] if overlap and count_tokens(current[-1]) <= overlap else None
                current, size = ([tail], count_tokens(tail)) if tail and count_tokens(tail) + n + 2 <= budget \
                    else ([], 0)
            current.append(para)
            size += n + 2
        if current:
            chunks.append(_make_chunk(doc, section, header, current, len(chunks)))
    return chunks


def _make_chunk(doc: ParsedDocument, section: Section, header: str, paras: list[str], ordinal: int) -> Chunk:
    body = "\n\n".join(paras)
    text = f"{header}\n\n{body}"
    return Chunk(
        ordinal=ordinal,
        title=doc.title,
        section=section.heading or doc.title,
        anchor=anchor_for(section.heading) if section.heading else "",
        text=text,
        token_count=count_tokens(text),
        metadata=dict(doc.metadata),
    )
