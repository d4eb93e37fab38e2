"""Help centers as they are really written: the Markdown dialects of documentation tools, cleaned to plain
Markdown at ingestion, so what is quoted and cited is prose with its headings — never `{% endhint %}`.

Real help centers come out of GitBook, Docusaurus (MDX), MkDocs Material, Hugo and Jekyll. Each extends
Markdown with its own block syntax. `normalise` walks the document line by line — fenced code (of any fence
length) and inline code are left as they are — and gives every construct its text:

- admonitions and hints (`{% hint %}`, `:::note`, `:::note[Title]`, `:::note{title="…"}`, `!!! tip "Title"`,
  `??? warning`, `{{< hint >}}`, `{{% notice tip "Title" %}}`, `<Admonition>`) become their text behind a
  label ("**Note:** …"); a title goes with it; an outer one keeps its own line when another opens inside;
- tabs (`{% tab title="Card" %}`, `<TabItem label="Card">`, `=== "Card"`, `{{< tab "Card" >}}`) become
  headings one level below the current one, so each tab is a section of its own and is cited by its title;
  what follows the tab group goes back under the heading the group sat in;
- imports, exports (one line or several), JSX tags and expressions, `{/* comments */}`, HTML comments and
  tags, shortcodes and Liquid tags that carry no text are dropped; Liquid `{% comment %}` drops its text and
  `{% raw %}` keeps its own verbatim; includes keep the text they were given; `{{ x | default: "y" }}` keeps
  its default; highlight tags become code fences; content references keep their link text; figures keep
  their caption; footnote markers and abbreviation definitions go, footnotes stay as text;
- constructs inside block quotes are cleaned the same way, inside the quote;
- HTML entities (`&#x20;`, `&nbsp;`) are decoded and whitespace normalised (tabs that indent count as four
  spaces);
- relative links resolve against the document's own source: a link to another document that exists
  points at its page on this service (`/knowledge/...`), which citations link to; any other link keeps its
  text only, since a bare `../payouts/README.md` means nothing once quoted.

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
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

from core.errors import IngestError

LABELS = {"info": "Note", "note": "Note", "hint": "Note", "abstract": "Note", "summary": "Note", "tip": "Tip",
          "success": "Tip", "question": "Note", "example": "Example", "quote": "Quote", "warning": "Warning",
          "caution": "Warning", "attention": "Warning", "danger": "Warning", "error": "Warning",
          "failure": "Warning", "bug": "Warning", "important": "Important", "callout": "Note", "alert": "Note"}
# markers that tell one documentation tool from another (the first that matches names the dialect)
DIALECT_MARKERS = [
    ("gitbook", re.compile(r"(?<!\{)\{%\s*(?:hint|tabs?|endhint|content-ref|embed|swagger|stepper|columns)\b"
                           r"|&#x20;|<figure>")),
    ("docusaurus", re.compile(r"(?m)^:{3,}\w|^import \w.* from ['\"]|<TabItem\b|\{/\*")),
    ("mkdocs", re.compile(r"(?m)^(?:!!!|\?\?\?\+?) ?\w|^=== \"|--8<--")),
    ("hugo", re.compile(r"\{\{[<%]")),
    ("jekyll", re.compile(r"\{%\s*(?:include|raw|if|for|assign|capture|highlight|comment|link)\b"
                          r"|\{\{\s*(?:site|page)\.")),
]

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_HEADING = re.compile(r"^(#{1,6})\s+(\S.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", re.S)
_LIQUID_COMMENT = re.compile(r"\{%-?\s*comment\s*-?%\}.*?\{%-?\s*endcomment\s*-?%\}", re.S)
_LIQUID = re.compile(r"\{%-?\s*(\w[\w-]*)([^%]{0,2000}?)-?%\}")
_SHORTCODE = re.compile(r"\{\{[<%]\s*(/?)\s*([\w-]+)([^>%]{0,2000}?)\s*[>%]\}\}")
_ESCAPED_SHORTCODE = re.compile(r"\{\{<\s*/\*\s*(.*?)\s*\*/\s*>\}\}")
_TEMPLATE_OUTPUT = re.compile(r"\{\{-?\s*([^<%{}][^{}]{0,500}?)-?\}\}")
_DEFAULT = re.compile(r"\|\s*default:\s*(['\"])(.*?)\1")
_ATTR = re.compile(r"""(\w[\w-]*)=(?:"([^"]*)"|'([^']*)'|(\S+))""")
_GITBOOK_HINT = re.compile(r"^\s*\{%\s*hint\s+style=\"(\w+)\"\s*%\}\s*$")
_ADMONITION_OPEN = re.compile(r"^\s*:{3,}(\w+)(?:\[(.*?)\]|\{title=\"(.*?)\"\}|\s+(.*?))?\s*$")
_ADMONITION_CLOSE = re.compile(r"^\s*:{3,}\s*$")
_MKDOCS_ADMONITION = re.compile(r"^(\s*)(?:!!!|\?\?\?\+?)\s*(\w+)(?:\s+(?:inline|end))*(?:\s+\"(.*?)\")?\s*$")
_MKDOCS_TAB = re.compile(r"^(\s*)===\+?\s+\"(.*?)\"\s*$")
_TABS_END = re.compile(r"\{%\s*endtabs\s*%\}|</Tabs>|\{\{[<%]\s*/tabs\s*[>%]\}\}")
_HIGHLIGHT_OPEN = re.compile(r"^\s*(?:\{%\s*highlight\s+(\w+)[^%]*%\}|\{\{<\s*highlight\s+(\w+)[^>]*>\}\})\s*$")
_HIGHLIGHT_CLOSE = re.compile(r"^\s*(?:\{%\s*endhighlight\s*%\}|\{\{<\s*/highlight\s*>\}\})\s*$")
_JSX_TAB = re.compile(r"<TabItem\b([^>]*)>")
_JSX_CALLOUT = re.compile(r"<(Admonition|Callout|Note|Tip|Warning|Info|Caution|Danger)\b([^>]*)>")
_JSX_TAG = re.compile(r"</?[A-Z][\w.]*(?:\s[^<>]*)?/?>")
_JSX_EXPRESSION = re.compile(r"\{[A-Za-z_][\w.]*\}")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_MDX_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.S)
_IMPORT = re.compile(r"^\s*import\s(?:.+\sfrom\s+)?['\"].+['\"];?\s*$")
_EXPORT = re.compile(r"^\s*export\s+(?:const|let|default|function)\b")
_FIGCAPTION = re.compile(r"<figcaption>(.*?)</figcaption>", re.S)
_TAG = re.compile(r"</?(?:figure|img|p|br|span|div|picture|source|details|summary|mark|sup|sub|table|thead|tbody|"
                  r"tr|td|th|a|ul|ol|li|strong|em|b|i|u|small|center|section|article|header|aside|kbd|hr)\b[^>]*>",
                  re.I)
_IMAGE = re.compile(r"!\[([^\]]{0,500})\]\([^)]{0,1000}\)")
_LINK = re.compile(r"(?<!!)\[([^\]]{1,500})\]\(([^)\s]{0,1000})(?:\s+\"[^\"]{0,300}\")?\)")
_ATTR_LIST = re.compile(r"\{\s*(?::\s*)?(?:[.#][\w-]+|\w[\w-]*=(?:\"[^\"]*\"|\S+?))(?:\s+(?:[.#][\w-]+|"
                        r"\w[\w-]*(?:=(?:\"[^\"]*\"|[^\s}]+))?))*\s*\}")
_FOOTNOTE_REF = re.compile(r"\[\^[\w-]+\](?!:)")
_FOOTNOTE_DEF = re.compile(r"^\[\^[\w-]+\]:\s*")
_ABBREVIATION = re.compile(r"^\*\[[^\]]+\]:")
_SNIPPET = re.compile(r"^\s*;?-{2}8<-{2}")
_COLUMNS = re.compile(r"^\s*<--->\s*$")


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
            if not isinstance(meta, dict):
                raise IngestError("bad front matter: it must be a mapping of keys to values")
            return {str(k): v for k, v in meta.items()}, text[end + len(fence) + 1:].lstrip("\n")
    return {}, text


def label(kind: str, title: str | None = None) -> str:
    name = LABELS.get(kind.lower(), kind.capitalize())
    title = (title or "").strip()
    return f"**{name}:**" + (f" **{title}**" if title and title.lower() != kind.lower() else "")


def _arguments(text: str) -> tuple[dict[str, str], list[str]]:
    """A shortcode's or tag's arguments: named (`title="A b"`) and positional (`"Small parcel"`, `info`)."""
    named = {k: a or b or c for k, a, b, c in _ATTR.findall(text)}
    rest = _ATTR.sub(" ", text)
    try:
        positional = shlex.split(rest)
    except ValueError:
        positional = rest.split()
    return named, positional


class _Walk:
    """One pass over the lines, outside fenced code: block constructs first, then inline clean-up."""

    def __init__(self, source: str, exists: Callable[[str], bool] | None = None) -> None:
        self.source = source
        self.exists = exists
        self.out: list[str] = []
        self.level = 1  # the last heading's level, for tabs
        self.heading: str | None = None  # the last real heading line, to go back to after a tab group
        self.tab_parent: str | None = None  # set while a tab group is open
        self.resume: str | None = None  # a tab group ended: its parent heading, re-opened before more text
        self.pending_label = ""  # the next text line opens an admonition: it carries the label
        self.skip_until: re.Pattern[str] | None = None  # inside a construct whose lines all go

    # -- output -----------------------------------------------------------------------------------
    def emit(self, line: str) -> None:
        if not line.strip():
            self.out.append(line)
            return
        heading = _HEADING.match(line)
        if self.resume and not heading:
            self.out += ["", self.resume, ""]
        self.resume = None
        if self.pending_label and not heading and not _FENCE.match(line):
            stripped = line.strip()
            line = stripped if stripped.startswith(self.pending_label) else f"{self.pending_label} {stripped}"
            self.pending_label = ""
        self.out.append(line)

    def open_label(self, new: str) -> None:
        """An admonition opens; one still waiting for its text (the outer of two) keeps its own line."""
        if self.pending_label:
            self.out.append(self.pending_label)
        self.pending_label = new

    def tab(self, title: str) -> None:
        if self.tab_parent is None:
            self.tab_parent = self.heading or ""
        self.resume = None
        self.out += ["", f"{'#' * min(self.level + 1, 6)} {html.unescape(title).strip()}", ""]

    def end_tabs(self) -> None:
        if self.tab_parent is not None:
            self.resume = self.tab_parent or None
            self.tab_parent = None

    # -- walking ----------------------------------------------------------------------------------
    def run(self, lines: list[str]) -> list[str]:
        i, fence = 0, None
        while i < len(lines):
            line = lines[i]
            if fence is None and (opened := _HIGHLIGHT_OPEN.match(line)):
                line = lines[i] = "```" + (opened.group(1) or opened.group(2))
            elif fence == "```" and _HIGHLIGHT_CLOSE.match(line):
                line = lines[i] = "```"
            marker = _FENCE.match(line)
            if fence is not None:
                if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence) \
                        and not line.strip()[len(marker.group(1)):].strip():
                    fence = None
                self.out.append(line)
                i += 1
                continue
            if marker:
                fence = marker.group(1)
                self.emit(line)
                i += 1
                continue
            i = self.block(lines, i)
        return self.out

    def block(self, lines: list[str], i: int) -> int:
        """Handle the construct starting at line i; returns the next line to read."""
        line = lines[i]
        if self.skip_until is not None:
            if self.skip_until.search(line):
                self.skip_until = None
            return i + 1
        if line.lstrip().startswith(">"):
            return self.quote(lines, i)
        if heading := _HEADING.match(line):
            self.level, self.heading = len(heading.group(1)), self.inline(line)
            self.tab_parent = None
            self.emit(self.heading)
            return i + 1
        if hint := _GITBOOK_HINT.match(line):
            self.open_label(label(hint.group(1)))
            return i + 1
        if opened := _ADMONITION_OPEN.match(line):
            self.open_label(label(opened.group(1), opened.group(2) or opened.group(3) or opened.group(4)))
            return i + 1
        if _ADMONITION_CLOSE.match(line):
            self.pending_label = ""
            return i + 1
        if admonition := _MKDOCS_ADMONITION.match(line):
            self.open_label(label(admonition.group(2), admonition.group(3)))
            return self.indented_body(lines, i + 1, len(admonition.group(1)))
        if tab := _MKDOCS_TAB.match(line):
            self.tab(tab.group(2))
            end = self.indented_body(lines, i + 1, len(tab.group(1)))
            if end >= len(lines) or not _MKDOCS_TAB.match(lines[end]):
                self.end_tabs()
            return end
        if (skipped := self.dropped(lines, i)) is not None:
            return skipped
        if _TABS_END.search(line):
            self.end_tabs()
        self.emit(self.inline(_FOOTNOTE_DEF.sub("", line)))
        return i + 1

    def dropped(self, lines: list[str], i: int) -> int | None:
        """Lines that carry no text: imports, exports (one line or several, to their closing `;` or `}`),
        snippets, abbreviation definitions, column separators, a Liquid comment. The next line to read, or
        None when line i is none of them."""
        line = lines[i]
        if _IMPORT.match(line) or _SNIPPET.match(line) or _ABBREVIATION.match(line) or _COLUMNS.match(line):
            return i + 1
        if _EXPORT.match(line):
            while i < len(lines) and not re.search(r"[;}]\s*$", lines[i]) and i + 1 < len(lines) \
                    and lines[i + 1].strip():
                i += 1
            return i + 1
        if "{% comment %}" in line and "{% endcomment %}" not in line:
            self.skip_until = re.compile(r"\{%-?\s*endcomment\s*-?%\}")
            self.emit(self.inline(line.split("{% comment %}", 1)[0]))
            return i + 1
        return None

    def indented_body(self, lines: list[str], i: int, indent: int) -> int:
        """MkDocs' admonition and tab bodies: the lines indented by four more spaces, walked dedented
        (code fenced inside them too)."""
        end = i
        while end < len(lines) and (not lines[end].strip()
                                    or len(lines[end]) - len(lines[end].lstrip()) >= indent + 4):
            end += 1
        while end > i and not lines[end - 1].strip():
            end -= 1  # trailing blank lines belong to what follows
        pending, self.pending_label = self.pending_label, ""
        inner = self.child()
        inner.pending_label = pending
        self.out += inner.run([line[indent + 4:] if line.strip() else "" for line in lines[i:end]])
        return end

    def quote(self, lines: list[str], i: int) -> int:
        """A block quote: its lines cleaned like any other, inside the quote."""
        end = i
        while end < len(lines) and lines[end].lstrip().startswith(">"):
            end += 1
        inner = self.child()
        for line in inner.run([re.sub(r"^\s*>\s?", "", line) for line in lines[i:end]]):
            self.emit(f"> {line}".rstrip())
        return end

    def child(self) -> _Walk:
        inner = _Walk(self.source, self.exists)
        inner.level, inner.heading = self.level, self.heading
        return inner

    # -- inline -----------------------------------------------------------------------------------
    def inline(self, line: str) -> str:
        kept: list[str] = []  # inline code and {% raw %}: left exactly as written

        def keep(text: str) -> str:
            kept.append(text)
            return f"\x00{len(kept) - 1}\x00"

        line = _RAW.sub(lambda m: keep(m.group(1)), line)
        line = _INLINE_CODE.sub(lambda m: keep(m.group(0)), line)
        line = _LIQUID_COMMENT.sub("", line)
        line = _ESCAPED_SHORTCODE.sub(lambda m: keep("{{< " + m.group(1) + " >}}"), line)
        line = _SHORTCODE.sub(self.shortcode, line)  # before Liquid: `{{% x %}}` holds a `{% x %}`
        line = _LIQUID.sub(self.liquid, line)
        line = _TEMPLATE_OUTPUT.sub(lambda m: d.group(2) if (d := _DEFAULT.search(m.group(1))) else "", line)
        line = _JSX_TAB.sub(lambda m: self.jsx_tab(m.group(1)), line)
        line = _JSX_CALLOUT.sub(lambda m: self.jsx_callout(m.group(1), m.group(2)), line)
        line = _JSX_TAG.sub("", line)
        line = _JSX_EXPRESSION.sub("", line)
        line = _FIGCAPTION.sub(lambda m: f"Figure: {_TAG.sub('', m.group(1)).strip()}", line)
        line = _TAG.sub("", line)
        line = _IMAGE.sub("", line)
        line = _LINK.sub(self.link, line)
        line = _ATTR_LIST.sub("", line)
        line = _FOOTNOTE_REF.sub("", line)
        line = html.unescape(line).replace("\u00a0", " ").replace("\u200b", "")
        line = re.sub(r"(?<=\S) {2,}", " ", line.rstrip())
        line = re.sub(r" +([.,;:!?])(?=\s|$)", r"\1", line)  # "Welcome to ." after a dropped variable
        return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], line)

    def liquid(self, match: re.Match[str]) -> str:
        """GitBook's and Jekyll's `{% tag %}`: a tab's title becomes a heading, a hint its label, an include
        its text; the rest go."""
        tag = match.group(1)
        named, positional = _arguments(match.group(2))
        if tag == "tab" and "title" in named:
            self.tab(named["title"])
        elif tag == "endtabs":
            self.end_tabs()
        elif tag == "hint":
            self.open_label(label(named.get("style", "info")))
        elif tag == "include" and (named.get("content") or named.get("title")):
            title = named.get("title")
            return f"**{title}:** {named.get('content', '')}".strip() if title else named["content"]
        return ""

    def shortcode(self, match: re.Match[str]) -> str:
        """Hugo's `{{< name ... >}}`: a hint, notice or alert opens a label (with its title); details and expand
        label their text with their title; a tab takes its name; a figure keeps its caption; the rest go."""
        closing, name = match.group(1), match.group(2).lower()
        if closing:
            if name == "tabs":
                self.end_tabs()
            return ""
        named, positional = _arguments(match.group(3))
        if name == "figure" and named.get("caption"):
            return f"Figure: {named['caption']}"
        if name in ("hint", "notice", "alert", "note", "tip", "warning", "callout", "admonition"):
            kind = positional[0] if positional and name in ("hint", "notice", "alert", "callout", "admonition") \
                else named.get("type") or name
            title = named.get("title") or (positional[1] if len(positional) > 1 else None)
            self.open_label(label(kind, title))
        elif name in ("details", "expand", "collapse", "accordion"):
            title = named.get("title") or (positional[0] if positional else None)
            if title:
                self.open_label(f"**{title}:**")
        elif name == "tab" and (title := named.get("title") or named.get("name") or (positional[0] if positional
                                                                                   else None)):
            self.tab(title)
        return ""

    def jsx_tab(self, attributes: str) -> str:
        named, _ = _arguments(attributes)
        if title := named.get("label") or named.get("value"):
            self.tab(title)
        return ""

    def jsx_callout(self, name: str, attributes: str) -> str:
        named, _ = _arguments(attributes)
        self.open_label(label(named.get("type") or name, named.get("title")))
        return ""

    def link(self, match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        if re.match(r"^(?:https?:|mailto:|#)", target):
            return match.group(0)  # absolute links and in-page anchors stay
        if not target or target.startswith("/") or not re.search(r"\.(?:md|mdx|markdown|html?)(?:#.*)?$", target):
            return text  # a site path we cannot see, an asset, or a template's link we dropped: the words stay
        path, _, fragment = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(self.source), path))
        if resolved.startswith("../") or (self.exists is not None and not self.exists(path)):
            return text
        return f"[{text}](/knowledge/{resolved}{'#' + fragment if fragment else ''})"


def normalise(text: str, source: str, exists: Callable[[str], bool] | None = None) -> Normalised:
    """The document's text as plain Markdown, its dialect, and what its front matter said. `exists(target)`
    says whether a relative link's target is a file beside the document (only those become links)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    metadata, body = front_matter(text)
    dialect = dialect_of(body)
    if dialect == "markdown" and text.startswith("+++"):
        dialect = "hugo"  # TOML front matter: Hugo's
    body = _MDX_COMMENT.sub("", _HTML_COMMENT.sub("", body))
    lines = [re.sub(r"^\t+", lambda m: "    " * len(m.group(0)), line) for line in body.split("\n")]
    cleaned = "\n".join(_Walk(source, exists).run(lines))
    cleaned = re.sub(r"\n{3,}", "\n\n", cleaned).strip() + "\n"
    title = metadata.pop("title", None)
    description = metadata.pop("description", None)
    return Normalised(cleaned, dialect, str(title).strip() if title else None,
                      " ".join(str(description).split()) if description else None, metadata)
