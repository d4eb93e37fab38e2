"""Help centers as they are really written: the Markdown dialects of documentation tools, cleaned to plain
Markdown at ingestion, so what is quoted and cited is prose with its headings — never `{% endhint %}`.

Real help centers come out of GitBook, Docusaurus (MDX), MkDocs Material, Hugo and Jekyll. Each extends
Markdown with its own block syntax. `normalise` walks the document line by line — fenced code is left
as it is — and gives every construct its text:

- admonitions and hints (`{% hint %}`, `:::note`, `!!! tip "Title"`, `??? warning`, `{{< hint >}}`) become
  their text behind a label ("Note: ...", "Warning: ...");
- tabs (`{% tab title="Card" %}`, `<TabItem label="Card">`, `=== "Card"`) become headings one level below
  the current one, so each tab is a section of its own and is cited by its title;
- imports, exports, JSX tags, `{/* comments */}`, HTML comments, shortcodes and Liquid tags that carry no
  text are dropped; content references keep their link text; figures keep their caption;
- HTML entities (`&#x20;`, `&nbsp;`) are decoded and whitespace normalised;
- relative links resolve against the document's own source: a link to another document of the corpus
  points at its page on this service (`/knowledge/...`), which citations link to; any other link keeps
  its text only, since a bare `../payouts/README.md` means nothing once quoted.

Front matter (YAML `---` or TOML `+++`) is read here too: `title` and `description` feed the document's
title and first section, the other keys are kept as metadata, never as text.

Why not markdown-it-py here: it parses to HTML, and the chunker needs Markdown back (headings, lists,
tables, code), while none of its plugins knows GitBook's, Hugo's or Liquid's tags. The walk below holds one
small handler per construct instead, each tested on a document in that dialect (tests/test_dialects.py).
"""

from __future__ import annotations

import html
import posixpath
import re
import tomllib
from dataclasses import dataclass, field

import yaml

from core.errors import IngestError

MARKDOWN_SUFFIXES = (".md", ".mdx", ".markdown")
LABELS = {"info": "Note", "note": "Note", "hint": "Note", "abstract": "Note", "summary": "Note", "tip": "Tip",
          "success": "Tip", "question": "Note", "example": "Example", "quote": "Quote", "warning": "Warning",
          "caution": "Warning", "attention": "Warning", "danger": "Warning", "error": "Warning",
          "failure": "Warning", "bug": "Warning", "important": "Important"}
# markers that tell one documentation tool from another (the first that matches names the dialect)
DIALECT_MARKERS = [
    ("gitbook", re.compile(r"\{%\s*(?:hint|tabs?|endhint|content-ref|embed|swagger|code)\b|&#x20;|<figure>")),
    ("docusaurus", re.compile(r"(?m)^:::\w|^import \w.* from ['\"]|<TabItem\b|\{/\*")),
    ("mkdocs", re.compile(r"(?m)^(?:!!!|\?\?\?\+?) ?\w|^=== \"|--8<--")),
    ("hugo", re.compile(r"\{\{[<%]")),
    ("jekyll", re.compile(r"\{%\s*(?:include|raw|if|for|assign|capture|highlight)\b|\{\{\s*(?:site|page)\.")),
]

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+\S")
_LIQUID = re.compile(r"\{%-?\s*(\w[\w-]*)([^%]*?)-?%\}")
_SHORTCODE = re.compile(r"\{\{[<%]\s*(/?)\s*([\w-]+)([^>%]*?)[>%]\}\}")
_TEMPLATE_OUTPUT = re.compile(r"\{\{-?\s*[^<%{}][^{}]*?-?\}\}")  # Liquid's / Hugo's {{ page.title }}
_ATTR = re.compile(r"""(\w[\w-]*)=(?:"([^"]*)"|'([^']*)'|(\S+))""")
_GITBOOK_HINT = re.compile(r"^\s*\{%\s*hint\s+style=\"(\w+)\"\s*%\}\s*$")
_DOCUSAURUS_OPEN = re.compile(r"^\s*:::(\w+)(?:\[(.*?)\]|\s+(.*?))?\s*$")
_MKDOCS_ADMONITION = re.compile(r"^(\s*)(?:!!!|\?\?\?\+?)\s*(\w+)(?:\s+\"(.*?)\")?\s*$")
_MKDOCS_TAB = re.compile(r"^(\s*)===\+?\s+\"(.*?)\"\s*$")
_JSX_TAB = re.compile(r"<TabItem\b([^>]*)>")
_JSX_CALLOUT = re.compile(r"<(Admonition|Callout|Note|Tip|Warning|Info|Caution|Danger)\b([^>]*)>")
_JSX_TAG = re.compile(r"</?[A-Z][\w.]*(?:\s[^<>]*)?/?>")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_MDX_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.S)
_IMPORT_EXPORT = re.compile(r"^\s*(?:import\s.+\sfrom\s+['\"].+['\"];?|import\s+['\"].+['\"];?"
                            r"|export\s+(?:const|default|function)\b.*)\s*$")
_FIGCAPTION = re.compile(r"<figcaption>(.*?)</figcaption>", re.S)
_TAG = re.compile(r"</?(?:figure|img|p|br|span|div|picture|source|details|summary|mark|sup|sub)\b[^>]*>", re.I)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_ATTR_LIST = re.compile(r"\s*\{:?\s*[.#][\w.# -]*\}\s*$")
_SNIPPET = re.compile(r"^\s*-{2}8<-{2}")


@dataclass
class Normalised:
    text: str
    dialect: str
    title: str | None = None
    description: str | None = None
    metadata: dict = field(default_factory=dict)


def dialect_of(text: str) -> str:
    return next((name for name, marker in DIALECT_MARKERS if marker.search(text)), "markdown")


def front_matter(text: str) -> tuple[dict, str]:
    """YAML (`---`) or TOML (`+++`) front matter, and the body after it."""
    for fence, load in (("---", yaml.safe_load), ("+++", tomllib.loads)):
        if text.startswith(fence + "\n"):
            end = text.find("\n" + fence, len(fence) + 1)
            if end == -1:
                continue
            try:
                meta = load(text[len(fence) + 1:end]) or {}
            except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
                raise IngestError(f"bad front matter: {str(exc).splitlines()[0]}") from None
            if isinstance(meta, dict):
                return {str(k): v for k, v in meta.items()}, text[end + len(fence) + 1:].lstrip("\n")
    return {}, text


def label(kind: str, title: str | None = None) -> str:
    name = LABELS.get(kind.lower(), kind.capitalize())
    title = (title or "").strip()
    return f"**{name}:**" + (f" **{title}**" if title and title.lower() != kind.lower() else "")


class _Walk:
    """One pass over the lines, outside fenced code: block constructs first, then inline clean-up."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.out: list[str] = []
        self.level = 1  # the last heading's level, for tabs
        self.hint_pending = False  # the next text line opens an admonition: it carries the label
        self.pending_label = ""

    def emit(self, line: str) -> None:
        if self.pending_label and line.strip():
            line = f"{self.pending_label} {line.strip()}"
            self.pending_label = ""
        self.out.append(line)

    def tab(self, title: str) -> None:
        self.out += ["", f"{'#' * min(self.level + 1, 6)} {html.unescape(title).strip()}", ""]

    def run(self, lines: list[str]) -> str:
        i, fence = 0, None
        while i < len(lines):
            line = lines[i]
            opened = _FENCE.match(line)
            if fence is not None or opened:
                if opened and fence is None:
                    fence = opened.group(1)
                elif opened and opened.group(1) == fence:
                    fence = None
                self.out.append(line)
                i += 1
                continue
            i = self.block(lines, i)
        return "\n".join(self.out)

    def block(self, lines: list[str], i: int) -> int:
        """Handle the construct starting at line i; returns the next line to read."""
        line = lines[i]
        if heading := _HEADING.match(line):
            self.level = len(heading.group(1))
            self.emit(self.inline(line))
            return i + 1
        if hint := _GITBOOK_HINT.match(line):
            self.pending_label = label(hint.group(1))
            return i + 1
        if opened := _DOCUSAURUS_OPEN.match(line):
            self.pending_label = label(opened.group(1), opened.group(2) or opened.group(3))
            return i + 1
        if line.strip() == ":::":
            self.pending_label = ""
            return i + 1
        if admonition := _MKDOCS_ADMONITION.match(line):
            self.pending_label = label(admonition.group(2), admonition.group(3))
            return self.indented_body(lines, i + 1, len(admonition.group(1)))
        if tab := _MKDOCS_TAB.match(line):
            self.tab(tab.group(2))
            return self.indented_body(lines, i + 1, len(tab.group(1)))
        if _IMPORT_EXPORT.match(line) or _SNIPPET.match(line):
            return i + 1
        self.emit(self.inline(line))
        return i + 1

    def indented_body(self, lines: list[str], i: int, indent: int) -> int:
        """MkDocs' admonition and tab bodies: the lines indented by four more spaces, walked dedented
        (code fenced inside them too)."""
        end = i
        while end < len(lines) and (not lines[end].strip()
                                    or len(lines[end]) - len(lines[end].lstrip()) >= indent + 4):
            end += 1
        label, self.pending_label = self.pending_label, ""
        inner = _Walk(self.source)
        inner.level, inner.pending_label = self.level, label
        inner.run([line[indent + 4:] if line.strip() else "" for line in lines[i:end]])
        self.out += inner.out
        return end

    def inline(self, line: str) -> str:
        line = _SHORTCODE.sub(self.shortcode, line)  # before Liquid: `{{% x %}}` holds a `{% x %}`
        line = _LIQUID.sub(self.liquid, line)
        line = _TEMPLATE_OUTPUT.sub("", line)
        line = _JSX_TAB.sub(lambda m: self.jsx_tab(m.group(1)), line)
        line = _JSX_CALLOUT.sub(lambda m: self.jsx_callout(m.group(1), m.group(2)), line)
        line = _JSX_TAG.sub("", line)
        line = _FIGCAPTION.sub(lambda m: f"Figure: {_TAG.sub('', m.group(1)).strip()}", line)
        line = _TAG.sub("", line)
        line = _IMAGE.sub("", line)
        line = _LINK.sub(self.link, line)
        line = _ATTR_LIST.sub("", line)
        line = html.unescape(line).replace("\u00a0", " ").replace("\u200b", "")
        stripped = line.rstrip()
        return re.sub(r"(?<=\S) {2,}", " ", stripped)

    def liquid(self, match: re.Match[str]) -> str:
        """GitBook's and Jekyll's `{% tag %}`: a tab's title becomes a heading, a hint its label; the rest go."""
        tag, args = match.group(1), dict((k, a or b or c) for k, a, b, c in _ATTR.findall(match.group(2)))
        if tag == "tab" and "title" in args:
            self.tab(args["title"])
        elif tag == "hint":
            self.pending_label = label(args.get("style", "info"))
        return ""

    def shortcode(self, match: re.Match[str]) -> str:
        """Hugo's `{{< name ... >}}`: a hint, notice or alert opens a label; tabs take their name; else dropped."""
        closing, name, args = match.group(1), match.group(2).lower(), match.group(3)
        if closing:
            return ""
        named = {k: a or b or c for k, a, b, c in _ATTR.findall(args)}
        if name == "figure" and named.get("caption"):
            return f"Figure: {named['caption']}"
        values = list(named.values()) or args.split()
        if name in ("hint", "notice", "alert", "note", "tip", "warning", "callout", "admonition"):
            self.pending_label = label(values[0] if values and name in ("hint", "notice", "alert", "callout",
                                                                         "admonition") else name)
        elif name == "tab" and values:
            self.tab(values[0].strip("\"'"))
        return ""

    def jsx_tab(self, attributes: str) -> str:
        args = {k: a or b or c for k, a, b, c in _ATTR.findall(attributes)}
        if title := args.get("label") or args.get("value"):
            self.tab(title)
        return ""

    def jsx_callout(self, name: str, attributes: str) -> str:
        args = {k: a or b or c for k, a, b, c in _ATTR.findall(attributes)}
        self.pending_label = label(args.get("type") or name, args.get("title"))
        return ""

    def link(self, match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        if re.match(r"^(?:https?:|mailto:|#)", target):
            return match.group(0)  # absolute links and in-page anchors stay
        if target.startswith("/") or not re.search(r"\.(?:md|mdx|markdown|html?)(?:#.*)?$", target):
            return text  # a site path we cannot see, or an asset: the words carry the meaning
        path, _, fragment = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(self.source), path))
        if resolved.startswith("../"):
            return text
        return f"[{text}](/knowledge/{resolved}{'#' + fragment if fragment else ''})"


def normalise(text: str, source: str) -> Normalised:
    """The document's text as plain Markdown, its dialect, and what its front matter said."""
    metadata, body = front_matter(text)
    dialect = dialect_of(body)
    if dialect == "markdown" and text.startswith("+++"):
        dialect = "hugo"  # TOML front matter: Hugo's
    body = _MDX_COMMENT.sub("", _HTML_COMMENT.sub("", body))
    cleaned = _Walk(source).run(body.splitlines())
    cleaned = re.sub(r"\n{3,}", "\n\n", cleaned).strip() + "\n"
    title = metadata.pop("title", None)
    description = metadata.pop("description", None)
    return Normalised(cleaned, dialect, str(title).strip() if title else None,
                      " ".join(str(description).split()) if description else None, metadata)
