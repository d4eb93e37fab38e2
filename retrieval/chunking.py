"""Read Markdown, plain-text and HTML files into sections, then into token-bounded chunks.

Headings become section titles (with a URL anchor) so a citation can point at the right part of a
document. Chunks are cut on paragraph boundaries where possible and never exceed the token budget
(tiktoken's cl100k_base, see retrieval/tokens.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from core.errors import EmptyDocument, IngestError, UnreadableDocument, UnsupportedDocument
from retrieval.dialects import normalise
from retrieval.tokens import count_tokens, encoding

SUPPORTED = {".md": "markdown", ".markdown": "markdown", ".mdx": "markdown", ".txt": "text", ".html": "html",
             ".htm": "html", ".pdf": "pdf"}
TYPES_NAMED = ".md, .txt, .html or .pdf"
# what a web server may answer with, for an import (retrieval/fetch.py refuses anything else)
CONTENT_TYPES = {"text/html": "html", "application/xhtml+xml": "html", "text/plain": "text",
                 "text/markdown": "markdown", "text/x-markdown": "markdown", "application/pdf": "pdf"}
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


class EmptyFile(IngestError):
    """A file with nothing in it at all: an error even in a folder (something went wrong writing it)."""

    code = "empty_document"


def anchor_for(heading: str) -> str:
    """GitHub-style anchor: lower case, punctuation dropped, spaces to dashes."""
    slug = re.sub(r"[^\w\- ]", "", heading.lower()).strip()
    return re.sub(r"\s+", "-", slug)


@dataclass
class Section:
    heading: str
    text: str
    path: list[str] = field(default_factory=list)  # enclosing headings, outermost first, then this one


@dataclass
class ParsedDocument:
    source: str
    title: str
    sections: list[Section]
    metadata: dict = field(default_factory=dict)  # front matter's other keys: filters, copied to every chunk
    dialect: str | None = None  # the Markdown dialect it was written in (retrieval/dialects.py), on the document


@dataclass
class Chunk:
    ordinal: int
    title: str
    section: str
    anchor: str
    text: str
    token_count: int
    metadata: dict

    @cached_property
    def search_text(self) -> str:
        """What the embedding and the keyword index read (`readable`); `text` is what is shown and cited."""
        return readable(self.text)


class _Outline:
    """Collects sections under a heading stack, so each section knows the headings it sits under."""

    def __init__(self) -> None:
        self.title: str | None = None
        self.sections: list[Section] = []
        self.stack: list[tuple[int, str]] = []  # (level, heading)
        self.parts: list[str] = []

    def heading(self, level: int, text: str) -> None:
        self.flush()
        if level == 1 and self.title is None:
            self.title, self.stack = text, []
            return
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, text))

    def add(self, text: str) -> None:
        self.parts.append(text)

    def flush(self) -> None:
        body = "\n\n".join(p.strip("\n") for p in self.parts).strip()
        if body:
            heading = self.stack[-1][1] if self.stack else ""
            self.sections.append(Section(heading, body, [h for _, h in self.stack]))
        self.parts = []


def parse_markdown(text: str, fallback_title: str) -> tuple[str, list[Section]]:
    outline = _Outline()
    lines: list[str] = []
    in_code = False
    for line in text.splitlines():
        if line.strip().startswith(("```", "~~~")):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match:
            outline.add("\n".join(lines))
            lines = []
            outline.heading(len(match.group(1)), match.group(2).strip())
        else:
            lines.append(line)
    outline.add("\n".join(lines))
    outline.flush()
    return outline.title or fallback_title, outline.sections


def _table_markdown(table) -> str:
    """An HTML table as Markdown pipe rows (header row first), so each row stays one readable line."""
    rows = []
    for tr in table.find_all("tr"):
        cells = [c.get_text(" ", strip=True).replace("|", "/") for c in tr.find_all(["th", "td"])]
        if any(cells):
            rows.append("| " + " | ".join(cells) + " |")
    if len(rows) > 1:
        width = rows[0].count("|") - 1
        rows.insert(1, "|" + "---|" * width)
    return "\n".join(rows)


_TAG_GAP = re.compile(r"\s+([,.;:!?)\]])")


# class and id words of a help center's furniture inside its content area (Readability's "unlikely
# candidates", narrowed to what help-center themes use): related articles, votes, share buttons, breadcrumbs...
_FURNITURE = re.compile(r"(?:^|[\s_-])(related|relatives|breadcrumbs?|sidebar|sidenav|share|social|votes?|ratings?|"
                        r"reactions?|feedback|pagination|pager|toc|comments?|subscribe|cookie|newsletter|author|"
                        r"byline|meta|print|edit-meta|promo|banner)(?:$|[\s_-])", re.I)
_TEXT_TAGS = ["p", "li", "pre", "td", "dd", "blockquote"]


# what a help-center page says around its article on every page, whatever its markup: rating prompts, dates,
# credits, share and print links, tables of contents, previous/next links, copyright lines
_FURNITURE_TEXT = re.compile(
    r"^(?:(?:was|is) this (?:article |page |answer )?helpful|did (?:this|you find) (?:article )?(?:answer|it helpful)|"
    r"\d+ (?:out )?of \d+ found this helpful|(?:last )?(?:updated|modified|edited|last update)\b|"
    r"(?:proudly )?powered by\b|built with\b|made with\b|share (?:this|on)\b|print(?: this)?(?: article)?$|"
    r"edit (?:this )?page|(?:table of contents|on this page|in this article|related articles?)$|"
    r"skip to (?:main )?content|(?:previous|next)(?: article| page)?\b|©|copyright\b|written by\b|"
    r"\d+ min(?:ute)?s? (?:to )?read)", re.I)


def is_furniture(text: str) -> bool:
    """A short line that is the page's furniture, not its content (only for pages imported from a site)."""
    return len(text) <= 100 and _FURNITURE_TEXT.match(text.strip(" :-–—|·")) is not None


def _text_size(el) -> int:
    return sum(len(t.get_text(" ", strip=True)) for t in el.find_all(_TEXT_TAGS) if t.find_parent(_TEXT_TAGS) is None)


def main_root(body):
    """The part of a web page that is its article, and the page's <h1> when it is outside that part.

    Candidates are <main>, role=main and each <article>; the innermost one holding most of the page's text
    wins (a sidebar's <article> of links does not: under 40% of the text). Inside it, and in the whole body
    when no candidate qualifies, blocks whose class or id names the page's furniture (related articles,
    votes, share buttons, breadcrumbs, tables of contents...) are dropped unless they hold the <h1> or most
    of the text; without a candidate, <header>, <aside> and <form> without an <h1> go too.
    (evals/web_extraction.py measures this over held-out help-center pages.)"""
    page = _text_size(body) or 1
    candidates = [el for el in body.find_all(["main", "article"]) + body.find_all(attrs={"role": "main"})
                  if _text_size(el) >= 0.4 * page]
    root = body
    for el in sorted(candidates, key=lambda e: -_text_size(e)):  # largest first, then any inner one nearly as big
        if root is body or (root in el.parents and _text_size(el) >= 0.6 * _text_size(root)):
            root = el
    if root is body:
        for tag in body.find_all(["header", "aside", "form"]):
            if tag.find("h1") is None:
                tag.decompose()
    size = _text_size(root) or 1
    for el in list(root.find_all(True)):
        if getattr(el, "decomposed", False):  # inside a block dropped already
            continue
        words = " ".join([*(el.get("class") or []), el.get("id") or ""])
        if words.strip() and _FURNITURE.search(words) and el.find("h1") is None and el.name != "h1" \
                and _text_size(el) < 0.5 * size:
            el.decompose()
    title = None
    if root is not body and root.find("h1") is None and len(headings := body.find_all("h1")) == 1:
        title = " ".join(headings[0].get_text(" ", strip=True).split()) or None
    return root, title  # the <h1> outside: the title when the page has no <title> (a site banner's <h1> often)


def _site_suffix_dropped(title: str | None) -> str | None:
    """"Refunds | Acme Help Center" -> "Refunds": a <title>'s site name after its last separator."""
    if not title:
        return title
    for sep in (" | ", " – ", " — ", " - ", " : ", " · "):
        head, found, tail = title.rpartition(sep)
        if found and head.strip() and len(tail) <= 40:
            return head.strip()
    return title


def parse_html(text: str, fallback_title: str, *, main_content: bool = False) -> tuple[str, list[Section]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "nav", "footer", "noscript", "template"]):
        tag.decompose()
    outline = _Outline()
    outline.title = soup.title.get_text(strip=True) if soup.title else None
    body = soup.body or soup
    if main_content:
        body, outside_h1 = main_root(body)
        outline.title = _site_suffix_dropped(outline.title) or outside_h1
    # <summary> and <dt> hold an FAQ's question: kept as their own paragraph, ahead of the answer
    for el in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "table", "blockquote", "dt", "dd",
                             "summary"]):
        if el.find_parent(["table", "pre"]) is not None or (el.name == "p" and el.find_parent("li") is not None):
            continue  # inside a table or code block: part of that block
        if el.name == "table":
            outline.add(_table_markdown(el))
            continue
        if el.name == "pre":
            code = el.get_text().strip("\n")
            if code.strip():
                outline.add(f"```\n{code}\n```")
            continue
        content = " ".join(el.get_text(" ", strip=True).split())  # HTML's line breaks are not the text's
        content = _TAG_GAP.sub(r"\1", content)  # "press <b>Skip</b>." is not "press Skip ."
        if not content or (main_content and el.name != "h1" and is_furniture(content)):
            continue
        if el.name[0] == "h" and el.name[1:].isdigit():
            if el.name == "h1" and not outline.sections and not outline.parts and not outline.stack:
                outline.title = content  # the page's visible title wins over <title>
            else:
                outline.heading(int(el.name[1]), content)
        else:
            outline.add(("- " if el.name == "li" else "") + content)
    outline.flush()
    if not outline.sections and (loose := body.get_text("\n", strip=True)):  # text only in <div>s and the like
        outline.add(loose)
        outline.flush()
    return outline.title or fallback_title, outline.sections


def read_document(path: Path, source: str) -> ParsedDocument:
    """Parse one file; raise IngestError naming the file for anything unreadable or empty."""
    if path.suffix.lower() not in SUPPORTED:
        raise UnsupportedDocument(f"{path}: unsupported file type (use {TYPES_NAMED})")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return parse_document(raw, str(path), source, exists=lambda target: (path.parent / target).is_file())


def kind_of(name: str, content_type: str | None = None) -> str | None:
    """What a file is, by its name's suffix, else by a Content-Type (a web page's URL has no suffix)."""
    suffix = Path(name.split("?", 1)[0]).suffix.lower()
    if suffix in SUPPORTED:
        return SUPPORTED[suffix]
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return CONTENT_TYPES.get(media)


def _decoded(raw: bytes, name: str, kind: str, encoding: str | None) -> str:
    """UTF-8 first; then the encoding a web server declared; an HTML page's own <meta charset> (bs4's
    UnicodeDammit reads it); anything else that is not UTF-8 is refused, naming the file."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    if encoding:
        try:
            return raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            pass
    if kind == "html":
        from bs4 import UnicodeDammit

        dammit = UnicodeDammit(raw, is_html=True)
        if dammit.unicode_markup is not None and dammit.original_encoding not in (None, "ascii"):
            return dammit.unicode_markup
    raise UnreadableDocument(f"{name}: not UTF-8 text (and no other encoding declared)")


def parse_document(raw: bytes, name: str, source: str, *, kind: str | None = None,
                   exists: Callable[[str], bool] | None = None, main_content: bool = False,
                   encoding: str | None = None) -> ParsedDocument:
    """Parse a file's bytes; `name` (a path, an upload's filename, a URL) names it in every error.
    `main_content`: an HTML page from a website, read from its <main> or <article> when it has one, so the
    site's header, menus and sidebars are not indexed on every page."""
    kind = kind or kind_of(name)
    if kind is None:
        raise UnsupportedDocument(f"{name}: unsupported file type (use {TYPES_NAMED})")
    stem = Path(name.rstrip("/").split("?", 1)[0]).stem or name
    fallback = stem.replace("-", " ").replace("_", " ").strip().capitalize() or "Untitled"
    if kind == "pdf":
        from retrieval.pdf import parse_pdf

        outline = _Outline()
        for level, text in parse_pdf(raw, name):
            if level:
                outline.heading(level, text)
            else:
                outline.add(text)
        outline.flush()
        title, sections = outline.title or fallback, outline.sections
        return ParsedDocument(source=source, title=title, sections=sections, metadata={})
    text = _decoded(raw, name, kind, encoding)
    if "\x00" in text:
        raise UnreadableDocument(f"{name}: looks like a binary file")
    metadata: dict = {}
    dialect = None
    if kind == "markdown":  # every documentation dialect, cleaned to plain Markdown first (retrieval/dialects.py)
        try:
            clean = normalise(text, source, exists=exists or (lambda target: False))
        except IngestError as exc:
            raise IngestError(f"{name}: {exc}") from None
        title, sections = parse_markdown(clean.text, fallback)
        title = clean.title or title
        metadata, dialect = clean.metadata, clean.dialect
        if clean.description and sections:  # the page's summary opens its first section
            sections[0].text = f"{clean.description}\n\n{sections[0].text}"
    elif kind == "html":
        title, sections = parse_html(text, fallback, main_content=main_content)
    else:
        title, sections = fallback, [Section("", text.strip())] if text.strip() else []
    if not sections:
        if not text.strip():
            raise EmptyFile(f"{name}: file is empty (no text to index)")
        raise EmptyDocument(f"{name}: no text of its own to index (only front matter, markup or components)")
    return ParsedDocument(source=source, title=title, sections=sections, metadata=metadata, dialect=dialect)


_OPENS = re.compile(r"[{\[(:]\s*$|=\s*[{\[]\s*$")


def _ancestors(stack: list[tuple[int, str]], line: str) -> list[str]:
    """Update the stack of open object lines (indent, line) for this line; return the lines it sits under."""
    stripped = line.strip()
    if not stripped:
        return [opener for _, opener in stack]
    indent = len(line) - len(line.lstrip())
    while stack and stack[-1][0] >= indent:
        stack.pop()
    above = [opener for _, opener in stack]
    if _OPENS.search(stripped) and not stripped.startswith(("#", "//")):
        stack.append((indent, line))
    return above


def _split_long(paragraph: str, budget: int) -> list[str]:
    """Split one over-long block into pieces of at most `budget` tokens.

    Code blocks and tables are cut between lines, and each piece keeps the fence (or the table's
    header row), so every piece still reads as code or as a table; prose is cut between tokens. A piece
    of a config block opens with the lines of the objects it sits in (`plans: {` / `  free: {`), so its
    values keep their key path (`plans › free › commission rate: 0.2`) for both retrieval legs.
    """
    lines = paragraph.split("\n")
    fence = lines[0] if lines[0].strip().startswith(("```", "~~~")) else None
    table = lines[0].strip().startswith("|") and len(lines) > 2
    if fence or table:
        if fence:
            marker = fence.strip()[:3]
            closed = len(lines) > 1 and lines[-1].strip().startswith(marker)
            head, body, tail = [fence], (lines[1:-1] if closed else lines[1:]), [marker]
        else:
            head, body, tail = lines[:2], lines[2:], []
        overhead = count_tokens("\n".join(head + tail)) + 2
        pieces, current, context, stack = [], [], [], []
        for line in body:
            above = _ancestors(stack, line) if fence else []
            if count_tokens(line) + overhead > budget:  # one huge line: cut it like prose
                line = encoding().decode(encoding().encode(line, disallowed_special=())[: budget - overhead])
            if current and count_tokens("\n".join(context + current + [line])) + overhead > budget:
                pieces.append("\n".join(head + context + current + tail))
                # the next piece repeats the object lines its first line sits in, while they leave it room
                context = above if count_tokens("\n".join(above + [line])) + overhead <= budget // 2 else []
                current = []
            current.append(line)
        if current:
            pieces.append("\n".join(head + context + current + tail))
        return pieces
    tokens = encoding().encode(paragraph, disallowed_special=())
    return [encoding().decode(tokens[i : i + budget]) for i in range(0, len(tokens), budget)]


def blocks(text: str) -> list[str]:
    """Paragraphs, list items, tables and code blocks; a fenced block stays whole even with blank lines."""
    out: list[str] = []
    current: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        stripped = line.strip()
        if fence is None and stripped.startswith(("```", "~~~")):
            if current:
                out.append("\n".join(current))
            current, fence = [line], stripped[:3]
            continue
        if fence is not None:
            current.append(line)
            if stripped.startswith(fence):
                out.append("\n".join(current))
                current, fence = [], None
            continue
        if not stripped:
            if current:
                out.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if current:
        out.append("\n".join(current))
    return [b.strip("\n") for b in out if b.strip()]


def chunk_document(doc: ParsedDocument, *, max_tokens: int = 200, overlap: int = 30) -> list[Chunk]:
    """Pack each section's blocks into chunks of at most `max_tokens` (heading context included).

    A section never shares a chunk with another, so every chunk has exactly one section title; its
    first line names the document and the headings the section sits under ("Handbook — Payments ›
    Payout Methods"), which both the embedding and the keyword index see. Consecutive chunks of one
    section overlap by up to `overlap` tokens of trailing paragraph text.
    """
    chunks: list[Chunk] = []
    for section in doc.sections:
        path = " › ".join(section.path or ([section.heading] if section.heading else []))
        header = f"{doc.title} — {path}" if path else doc.title
        budget = max(32, max_tokens - count_tokens(header) - 2)
        paragraphs: list[str] = []
        for para in blocks(section.text):
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


_CONFIG_LINE = re.compile(r"^\s*\"?([\w .-]+?)\"?\s*[:=]\s*(.*?)\s*,?$")


def _key(name: str) -> str:
    name = re.sub(r"^(export\s+)?(default\s+)?(const|let|var)\s+", "", name.strip())  # `export const plans =`
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name.strip()).replace("_", " ").replace("-", " ")
    return " ".join(words.split()).lower() if words.lower() != words else " ".join(words.split())


def table_rows(lines: list[str]) -> list[str]:
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    cells = [row for row in cells if not all(re.fullmatch(r":?-{2,}:?", c) or not c for c in row)]
    if len(cells) < 2:
        return [" ".join(" ".join(row) for row in cells)] if cells else []
    header, rows = cells[0], cells[1:]
    out = []
    for row in rows:
        first = f"{header[0]} {row[0]}".strip() if header[0] else row[0]
        rest = "; ".join(f"{h} {v}".strip() for h, v in zip(header[1:], row[1:], strict=False) if v)
        out.append(f"{first}: {rest}" if rest else first)
    return out


_TRAILING_COMMENT = re.compile(r"\s+(#|//)\s.*$")  # "30   # minimum 15": the comment is not the value


def config_lines(lines: list[str]) -> list[str]:
    """Lines of a config/code block, each with the keys it sits under (YAML/JSON indentation, INI [sections]):
    `tiers › studio › service fee: 7.5%`. Keys read as words (service_fee, serviceFee -> service fee)."""
    out, stack = [], []  # stack of (indent, key)
    section = ""
    for raw in lines:
        stripped = raw.strip()
        if not stripped or stripped.startswith(("#", "//")) or stripped.rstrip(",") in ("{", "}", "[", "]"):
            continue
        ini = re.fullmatch(r"\s*\[([\w .-]+)\]\s*", raw)
        if ini:
            section, stack = ini.group(1), []
            continue
        indent = len(raw) - len(raw.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        match = _CONFIG_LINE.match(raw)
        if match and match.group(2) in ("", "{", "["):
            stack.append((indent, _key(match.group(1))))
            continue
        line = raw.strip().lstrip("-").strip()
        if match:
            value = _TRAILING_COMMENT.sub("", match.group(2)).strip().rstrip(",")
            line = f"{_key(match.group(1))}: {value.strip(chr(34)).strip(chr(39))}"
        path = [section] if section else []
        path += [key for _, key in stack]
        out.append(" › ".join([*path, line]) if path else line)
    return out


def readable(text: str) -> str:
    """A chunk as words for the embedding and the keyword index: table rows and config lines become
    "Plan Plus: Monthly price $14.99" and "tiers › studio › service fee: 7.5%" instead of markup the
    embedding model reads poorly (a JSON block drowns its own field names in punctuation)."""
    out: list[str] = []
    for block in blocks(text):
        lines = block.split("\n")
        if lines[0].strip().startswith(("```", "~~~")):
            body = lines[1:-1] if len(lines) > 1 and lines[-1].strip().startswith(lines[0].strip()[:3]) else lines[1:]
            out.append("\n".join(config_lines(body)))
        elif lines[0].strip().startswith("|"):
            out.append("\n".join(table_rows(lines)))
        else:
            out.append(block)
    return "\n\n".join(o for o in out if o.strip())


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
