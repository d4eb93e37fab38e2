"""PDF files into sections, with pdfplumber (MIT; pdfminer.six underneath): text in reading order, headings
told from the body by font size, and tables kept as Markdown pipe rows (header first), like HTML tables, so
each row stays one readable line that the chunker never splits.

A PDF has no structure of its own: a line set noticeably larger than the document's body text, short and
not ending a sentence, is a heading (larger sizes are higher levels). Pages with nothing on them are skipped;
a PDF with no text at all (a scan) is an EmptyDocument that says it needs OCR.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from dataclasses import dataclass

from core.errors import EmptyDocument, EncryptedDocument, UnreadableDocument

HEADING_RATIO = 1.15  # a line this much larger than the body text (by its median character size) is a heading
HEADING_MAX_CHARS = 120
PARAGRAPH_GAP = 0.8  # a vertical gap above this many line heights starts a new paragraph


@dataclass
class _Line:
    page: int
    top: float
    bottom: float
    text: str
    size: float


@dataclass
class _Table:
    page: int
    top: float
    rows: list[list[str]]


def _open(raw: bytes, name: str):
    import pdfplumber
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect

    logging.getLogger("pdfminer").setLevel(logging.ERROR)  # it warns for every odd object of a broken file
    try:
        pdf = pdfplumber.open(io.BytesIO(raw))
        _ = pdf.pages  # parses the page tree: a broken file fails here, not later
        return pdf
    except Exception as exc:  # noqa: BLE001 - pdfminer raises many types; each is a file we cannot read
        cause = exc.__cause__ or (exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else exc)
        if isinstance(cause, PDFPasswordIncorrect | PDFEncryptionError) or "password" in str(cause).lower():
            raise EncryptedDocument(f"{name}: the PDF is encrypted (locked with a password); upload an "
                                    "unlocked copy") from None
        raise UnreadableDocument(f"{name}: not a readable PDF ({type(cause).__name__})") from None


def _cell(value: object) -> str:
    return " ".join(str(value or "").split()).replace("|", "/")


def _table_rows(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(row) + " |" for row in rows if any(row)]
    if len(lines) > 1:
        lines.insert(1, "|" + "---|" * len(rows[0]))
    return "\n".join(lines)


def _read(pdf, name: str) -> tuple[list[_Line], list[_Table]]:
    lines: list[_Line] = []
    tables: list[_Table] = []
    try:
        for number, page in enumerate(pdf.pages, 1):
            found = page.find_tables()
            boxes = [t.bbox for t in found]
            for table in found:
                rows = [[_cell(c) for c in row] for row in table.extract()]
                if sum(1 for row in rows if any(row)) >= 2:
                    tables.append(_Table(number, table.bbox[1], rows))
                else:  # a ruled box around a paragraph is no table: read its text as text
                    boxes.remove(table.bbox)

            def outside(obj, boxes=boxes) -> bool:
                x = (obj.get("x0", 0) + obj.get("x1", 0)) / 2
                y = (obj.get("top", 0) + obj.get("bottom", 0)) / 2
                return not any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes)

            text_page = page.filter(outside) if boxes else page
            for line in text_page.extract_text_lines(return_chars=True):
                text = " ".join(line["text"].split())
                sizes = sorted(c.get("size", 0) for c in line["chars"] if not c["text"].isspace())
                if text and sizes:
                    lines.append(_Line(number, line["top"], line["bottom"], text, sizes[len(sizes) // 2]))
    except Exception as exc:  # noqa: BLE001 - a page pdfminer cannot lay out is a file we cannot read
        raise UnreadableDocument(f"{name}: the PDF could not be read ({type(exc).__name__})") from None
    return lines, tables


def parse_pdf(raw: bytes, name: str) -> list[tuple[int, str]]:
    """A PDF as (heading level, text) blocks in reading order, level 0 for a paragraph or a table; the
    document's title is the first level-1 heading, else its metadata's Title. Typed errors name `name`."""
    pdf = _open(raw, name)
    try:
        lines, tables = _read(pdf, name)
        meta_title = " ".join(str((pdf.metadata or {}).get("Title") or "").split())
    finally:
        pdf.close()
    if not lines and not tables:
        raise EmptyDocument(f"{name}: the PDF has no text to index (a scanned PDF needs OCR first)")
    weights: Counter[float] = Counter()
    for line in lines:
        weights[round(line.size, 1)] += len(line.text)
    body = weights.most_common(1)[0][0] if weights else 0.0
    heading_sizes = sorted({round(x.size, 1) for x in lines if _is_heading(x, body)}, reverse=True)

    blocks: list[tuple[int, str]] = []
    paragraph: list[str] = []
    previous: _Line | None = None
    titled = False

    def flush() -> None:
        if paragraph:
            blocks.append((0, _join(paragraph)))
            paragraph.clear()

    items: list[tuple[int, float, _Line | _Table]] = [(x.page, x.top, x) for x in lines]
    items += [(t.page, t.top, t) for t in tables]
    for _, _, item in sorted(items, key=lambda i: (i[0], i[1])):
        if isinstance(item, _Table):
            flush()
            blocks.append((0, _table_rows(item.rows)))
            previous = None
        elif _is_heading(item, body):
            flush()
            level = min(heading_sizes.index(round(item.size, 1)) + 1, 6)
            if level == 1 and not titled and not blocks:
                titled = True  # the first, largest heading names the document
            elif titled or level == 1:
                level = max(level, 2)  # below the title, whatever its size
            blocks.append((level, item.text))
            previous = None
        else:
            if previous is not None and (item.page != previous.page or item.top - previous.bottom
                                         > PARAGRAPH_GAP * (previous.bottom - previous.top)):
                flush()
            paragraph.append(item.text)
            previous = item
    flush()
    if not titled and meta_title:
        blocks.insert(0, (1, meta_title))
    return blocks


def _is_heading(line: _Line, body: float) -> bool:
    return (body > 0 and line.size >= body * HEADING_RATIO and len(line.text) <= HEADING_MAX_CHARS
            and not line.text.endswith((".", ",", ";")))


def _join(lines: list[str]) -> str:
    """A paragraph's lines as one line of text; a word hyphenated across a line break is joined again."""
    out = ""
    for line in lines:
        if out.endswith("-") and len(out) > 1 and out[-2].isalpha() and line[:1].islower():
            out = out[:-1] + line
        else:
            out = f"{out} {line}" if out else line
    return out
