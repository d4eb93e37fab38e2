"""Fetching pages for a knowledge import, safely: the server fetches URLs an admin typed, so it must not be
turned against the network it runs in (SSRF).

Every connection is checked where it is made, after DNS resolution (a name that resolves to a private
address, or re-resolves to one later, is refused; the checked address is the one connected to), and every
redirect is followed by hand and checked again. Refused unless `MENTOR_IMPORT_ALLOW` lists the host or its
network: loopback, private, link-local (cloud metadata at 169.254.169.254 among them), shared (100.64/10),
multicast, reserved and unspecified addresses — whatever is not globally routable. Only http(s), no
credentials in the URL; limits on size, time and redirects; only the content types we read.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from core.errors import FetchRefused
from core.settings import Settings

REDIRECTS = {301, 302, 303, 307, 308}  # not 304, which httpx's `is_redirect` counts in
USER_AGENT = "mentor-knowledge-sync/1.0 (+help-center import)"
PAGE_TYPES = {"text/html", "application/xhtml+xml", "text/plain", "text/markdown", "text/x-markdown",
              "application/pdf"}
SITEMAP_TYPES = {"application/xml", "text/xml", "application/x-gzip", "application/gzip", "application/octet-stream",
                 "text/plain"}


class FetchFailed(Exception):
    """The URL was allowed but did not give us a page: a network error, a timeout, an HTTP error status."""


@dataclass
class Fetched:
    url: str  # after redirects
    status: int  # 200, or 304 (not modified since the validators we sent), 404 or 410 (gone)
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    charset: str | None = None  # the Content-Type's, for pages not in UTF-8


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, NAT64, 6to4, Teredo): each must be public too."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())) if a is not None]
    if ip in NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


class Policy:
    """Which hosts and networks may be fetched despite not being public (MENTOR_IMPORT_ALLOW)."""

    def __init__(self, allow: str = "") -> None:
        self.hosts: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in (p.strip() for p in allow.split(",")):
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.add(item.lower().rstrip("."))

    def check_address(self, host: str, address: str) -> None:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if host.lower().rstrip(".") in self.hosts or any(ip in net for net in self.networks):
            return
        for candidate in (ip, *_embedded_ipv4(ip)):
            if not candidate.is_global or candidate.is_multicast:
                raise FetchRefused(f"{host} resolves to {ip}, a private, loopback, link-local or reserved address: "
                                   "refused (list it in MENTOR_IMPORT_ALLOW to import from it)")

    def resolve(self, host: str, port: int) -> list[str]:
        """The host's addresses, every one allowed, or FetchRefused; a name that does not resolve is FetchFailed."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchFailed(f"{host}: the name does not resolve ({exc})") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:  # one private address among public ones is refused too (rebinding, split DNS)
            self.check_address(host, address)
        return addresses

    def check_url(self, url: str) -> None:
        if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
            raise FetchRefused(f"{url!r}: spaces and control characters are not allowed in a URL")
        try:
            parts = urlsplit(url)
            _ = parts.port  # out of range: ValueError
        except ValueError as exc:
            raise FetchRefused(f"{url}: not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https"):
            raise FetchRefused(f"{url}: only http and https URLs are imported")
        if not parts.hostname:
            raise FetchRefused(f"{url}: no host in the URL")
        if parts.username or parts.password:
            raise FetchRefused(f"{url}: URLs with credentials in them are not imported")


    def preflight(self, urls: list[str]) -> None:
        """Refuse at once what a sync would refuse anyway (a new source's URLs): bad schemes, credentials,
        names that resolve to private addresses. A name that does not resolve now may later: the job says so."""
        hosts: dict[tuple[str, int], None] = {}
        for url in urls:
            self.check_url(url)
            parts = urlsplit(url)
            hosts[(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))] = None
        for host, port in hosts:
            with contextlib.suppress(FetchFailed):
                self.resolve(host, port)


_deadline = threading.local()  # the monotonic time the current page's fetch must end by (Fetcher.get sets it)


def _left(timeout: float | None) -> float | None:
    """What is left of the page's whole time, as a socket timeout: a server that trickles its headers or its
    body a byte at a time is cut at the deadline, not at each read's timeout."""
    end = getattr(_deadline, "at", None)
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the page's time is up")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _left(timeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        return _DeadlineStream(self.inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str):
        return self.inner.get_extra_info(info)


class _GuardedBackend(httpcore.SyncBackend):
    """Connects only to addresses the policy allows, and to the very address it checked; every read and
    write keeps to the page's deadline."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        last: Exception | None = None
        for address in self.policy.resolve(host, port):
            try:
                stream = super().connect_tcp(address, port, _left(timeout), local_address, socket_options)
                return _DeadlineStream(stream)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"{host}: no address to connect to")


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, policy: Policy) -> None:
        super().__init__(retries=0)
        # httpx builds its connection pool without a way to pass a network backend; the same pool, with ours
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(), max_connections=4,
                                             network_backend=_GuardedBackend(policy))


class Fetcher:
    """One sync's HTTP client: keep-alive between its pages, the settings' limits on each."""

    def __init__(self, settings: Settings) -> None:
        self.policy = Policy(settings.import_allow)
        self.max_bytes = settings.import_max_bytes
        self.timeout = settings.import_timeout_s
        self.max_redirects = settings.import_max_redirects
        self.client = httpx.Client(transport=_GuardedTransport(self.policy), follow_redirects=False,
                                   timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
                                   headers={"User-Agent": USER_AGENT})

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
            types: set[str] = PAGE_TYPES) -> Fetched:
        """GET a URL (conditionally, when validators are given), following redirects by hand, each checked.
        Raises FetchRefused (policy) or FetchFailed (the site); 404/410 come back as a status (gone)."""
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        deadline = time.monotonic() + self.timeout
        _deadline.at = deadline
        current = url
        try:
            for _ in range(self.max_redirects + 1):
                self.policy.check_url(current)
                try:
                    with self.client.stream("GET", current, headers=headers) as response:
                        if response.status_code in REDIRECTS:
                            location = response.headers.get("location")
                            if not location:
                                raise FetchFailed(f"{current}: a redirect without a Location")
                            current = urljoin(current, location)
                            continue
                        return self._read(current, response, types, deadline)
                except httpx.TimeoutException:
                    raise FetchFailed(f"{current}: took longer than {self.timeout:g} s in all") from None
                except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, UnicodeError) as exc:
                    raise FetchRefused(f"{current}: not a valid URL ({exc})") from None
                except httpx.HTTPError as exc:
                    raise FetchFailed(f"{current}: {type(exc).__name__}: {exc}") from None
            raise FetchRefused(f"{url}: more than {self.max_redirects} redirects")
        finally:
            _deadline.at = None

    def _read(self, url: str, response: httpx.Response, types: set[str], deadline: float) -> Fetched:
        if response.status_code == 304:
            return Fetched(url, 304)
        if response.status_code in (404, 410):
            return Fetched(url, response.status_code)
        if response.status_code != 200:
            raise FetchFailed(f"{url}: HTTP {response.status_code}")
        media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media not in types:
            raise FetchRefused(f"{url}: content type {media or 'none'} is not one we import "
                               f"({', '.join(sorted(types))})")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchRefused(f"{url}: {int(declared):,} bytes, over the {self.max_bytes:,}-byte limit")
        body = bytearray()
        for part in response.iter_bytes():
            body += part
            if len(body) > self.max_bytes:
                raise FetchRefused(f"{url}: over the {self.max_bytes:,}-byte limit")
            if time.monotonic() > deadline:
                raise FetchFailed(f"{url}: took longer than {self.timeout:g} s")
        return Fetched(url, 200, bytes(body), media, response.headers.get("etag"),
                       response.headers.get("last-modified"), response.charset_encoding)
