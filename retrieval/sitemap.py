"""Sitemaps (sitemaps.org): the pages a site lists, with their `lastmod`; a sitemap index is followed one level
down. Parsed with defusedxml (no entity expansion, no external entities: the XML comes from the internet)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from core.errors import FetchRefused
from retrieval.fetch import SITEMAP_TYPES, Fetcher, FetchFailed

NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


@dataclass
class Listed:
    url: str
    lastmod: str | None = None


MAX_SITEMAP_BYTES = 50 * 1_048_576  # sitemaps.org's limit for one sitemap, uncompressed


def _gunzip(body: bytes, where: str) -> bytes:
    """A gzipped sitemap, never more than MAX_SITEMAP_BYTES unpacked (a small file can unpack to gigabytes)."""
    unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = unpack.decompress(body, MAX_SITEMAP_BYTES + 1)
    except zlib.error as exc:
        raise FetchFailed(f"{where}: a broken gzip file ({exc})") from None
    if len(out) > MAX_SITEMAP_BYTES or unpack.unconsumed_tail:
        raise FetchRefused(f"{where}: unpacks to more than {MAX_SITEMAP_BYTES // 1_048_576} MB (sitemaps.org's limit)")
    return out


def parse(body: bytes, where: str) -> tuple[list[Listed], list[str]]:
    """(pages, nested sitemaps) of one sitemap document: XML, gzipped XML, or a text file of URLs."""
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    if body[:2] == b"\x1f\x8b":
        body = _gunzip(body, where)
    if len(body) > MAX_SITEMAP_BYTES:
        raise FetchRefused(f"{where}: larger than {MAX_SITEMAP_BYTES // 1_048_576} MB (sitemaps.org's limit)")
    if body.lstrip()[:1] != b"<":  # sitemaps.org's text form: one URL a line
        lines = [line.strip() for line in body.decode("utf-8", "replace").splitlines() if line.strip()]
        if lines and all(line.startswith(("http://", "https://")) for line in lines):
            return [Listed(line) for line in lines], []
    try:
        root = ElementTree.fromstring(body)
    except DefusedXmlException as exc:
        raise FetchRefused(f"{where}: the sitemap uses XML entities, which are not read ({type(exc).__name__})") \
            from None
    except Exception as exc:  # noqa: BLE001 - ParseError and friends: a file that is no sitemap
        raise FetchFailed(f"{where}: not a sitemap (XML: {exc})") from None

    def text(el, name: str) -> str | None:
        found = el.find(NS + name)
        if found is None:
            found = el.find(name)
        return found.text.strip() if found is not None and found.text and found.text.strip() else None

    tag = root.tag.removeprefix(NS)
    if tag == "sitemapindex":
        return [], [loc for el in root if (loc := text(el, "loc"))]
    if tag != "urlset":
        raise FetchFailed(f"{where}: not a sitemap (its root is <{tag}>, not <urlset> or <sitemapindex>)")
    return [Listed(loc, text(el, "lastmod")) for el in root if (loc := text(el, "loc"))], []


def _get(fetcher: Fetcher, url: str) -> bytes:
    fetched = fetcher.get(url, types=SITEMAP_TYPES)
    if fetched.status != 200:
        raise FetchFailed(f"{url}: HTTP {fetched.status}")
    return fetched.body


def read_sitemap(fetcher: Fetcher, url: str, max_pages: int) -> list[Listed]:
    """Every page a sitemap (or a sitemap index, one level down) lists, deduplicated, in order; at most
    `max_pages` (more is an error: nothing is pruned on a partial list)."""
    pages, nested = parse(_get(fetcher, url), url)
    for child in nested:
        more, _ = parse(_get(fetcher, child), child)
        pages.extend(more)
        if len(pages) > max_pages:
            break
    unique = list({p.url: p for p in pages}.values())
    if len(unique) > max_pages:
        raise FetchRefused(f"{url}: lists more than {max_pages} pages (MENTOR_IMPORT_MAX_PAGES)")
    return unique
