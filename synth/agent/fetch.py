"""Fetch one web page for the visit tool, guarded against server-side request forgery.

An agent chooses the URLs it visits, and a QA pipeline may run next to services that must stay unreachable
(cloud metadata at 169.254.169.254, admin ports on localhost, the office network). So every hop, the first
and each redirect, is checked: the scheme must be http(s), and every address the host resolves to must be a
public one. The request then goes to the checked address itself (Host header and TLS SNI keep the name), so a
DNS answer that changes between check and connect (rebinding) cannot slip a private address in.

URLs come from models and pages, so they are data: every one (the first and every redirect target) is parsed and
checked here (scheme, host labels, port, length) before anything else sees it, and whatever a server sends or a
parser makes of it ends as a FetchError naming the problem, never as another exception.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass, field

import httpx

from ...crawler.extract import extract_page
from ..net import LoopClient
from ..search.bm25 import Page

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
MAX_URL = 8192  # characters; browsers and servers refuse far shorter ones
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")  # a DNS label (underscores occur in the wild)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([\w-]+)""", re.IGNORECASE)


class FetchError(Exception):
    """A page that cannot be fetched: refused by the guard, unreachable, an HTTP error, not HTML, too big."""


@dataclass
class Fetcher:
    """Fetch and extract HTML pages over http(s), refusing private addresses unless allowed."""

    allow_private: bool = False
    allowed_hosts: tuple[str, ...] = ()  # host names or IPs let through the address check, e.g. ("127.0.0.1",)
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    timeout: float = 20.0
    user_agent: str = "wdtk-visit/0.1"
    client: LoopClient = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.allowed_hosts = tuple(h.lower() for h in self.allowed_hosts)
        # trust_env=False: a proxy from the environment would connect on our behalf, past the address check
        headers = {"User-Agent": self.user_agent, "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"}
        self.client = LoopClient(timeout=self.timeout, trust_env=False, headers=headers)

    async def fetch(self, url: str) -> Page:
        """The page at `url` after redirects, as (title, main text); FetchError says why it could not be had."""
        try:
            async with asyncio.timeout(self.timeout):
                body, final_url, charset = await self.fetch_html(url)
                title, text = await asyncio.to_thread(extract_page, decode(body, charset), final_url)
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError(f"{short(url)} took longer than {self.timeout} s") from None
        except Exception as e:  # noqa: BLE001 - what a server sends, or a parser makes of it, fails this page only
            raise FetchError(f"{type(e).__name__} fetching {short(url)}: {' '.join(str(e).split())[:200]}") from None
        return Page(url, final_url, title, text)

    async def fetch_html(self, url: str) -> tuple[bytes, str, str | None]:
        """(body, final URL, declared charset) of an HTML page, following redirects hop by hop."""
        for _ in range(self.max_redirects + 1):
            target, headers, extensions = await self.pin(url)
            request = self.client().build_request("GET", target, headers=headers, extensions=extensions)
            try:
                response = await self.client().send(request, stream=True)
            except (httpx.InvalidURL, ValueError) as e:  # httpx parses a redirect's Location itself, and may choke
                raise FetchError(f"{short(url)} answered with an unusable redirect: {e}") from None
            try:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    url = redirect_target(url, response.headers["location"])
                    continue
                return await self.read(response, url), url, response.charset_encoding
            finally:
                await response.aclose()
        raise FetchError(f"more than {self.max_redirects} redirects")

    async def pin(self, url: str) -> tuple[httpx.URL, dict, dict]:
        """(URL to connect to, extra headers, request extensions) for `url`, or FetchError if it is refused."""
        parsed = parse_url(url)
        host = parsed.raw_host.decode("ascii").lower()
        if self.allow_private or host in self.allowed_hosts or parsed.host in self.allowed_hosts:
            return parsed, {}, {}
        address = await self.public_address(host, parsed.port or (443 if parsed.scheme == "https" else 80))
        headers = {"Host": parsed.netloc.decode("ascii")}
        if parsed.scheme == "http":
            return parsed.copy_with(host=address), headers, {}
        # The pool keys connections by address: an idle TLS connection made for one name must not carry
        # another name's request, so a pinned https connection is closed after its one response.
        return parsed.copy_with(host=address), headers | {"Connection": "close"}, {"sni_hostname": host}

    async def public_address(self, host: str, port: int) -> str:
        """An address `host` resolves to, provided every one of them is public."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise FetchError(f"cannot resolve {host!r}: {e}") from None
        addresses = [info[4][0] for info in infos]
        for address in addresses:
            if reason := non_public(address):
                raise FetchError(f"refused {host}: {address} is a {reason} address")
        return addresses[0]

    async def read(self, response: httpx.Response, url: str) -> bytes:
        """The body of an HTML answer, up to `max_bytes`; FetchError for errors, other types and big bodies."""
        if response.status_code >= 400:
            raise FetchError(f"HTTP {response.status_code} for {url}")
        kind = response.headers.get("content-type", "text/html").split(";")[0].strip().lower()
        if kind not in HTML_TYPES:
            raise FetchError(f"{url} is {kind}, not HTML")
        declared = response.headers.get("content-length") or "0"
        if not declared.strip().isdigit():
            raise FetchError(f"{short(url)} sent a malformed Content-Length {declared[:40]!r}")
        if int(declared) > self.max_bytes:
            raise FetchError(f"{url} is larger than {self.max_bytes} bytes")
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(f"{url} is larger than {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.client.aclose()


def short(url: object, limit: int = 200) -> str:
    """`url` quoted for a message, cut to `limit` characters (a model can write a URL of megabytes)."""
    text = repr(url)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def parse_url(url: object) -> httpx.URL:
    """`url` parsed and checked (http(s), a valid host and port, a sane length), or FetchError saying what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise FetchError(f"no URL to visit: {short(url)}")
    if len(url) > MAX_URL:
        raise FetchError(f"a URL of {len(url)} characters is not visited (at most {MAX_URL})")
    try:
        parsed = httpx.URL(url.strip())
        port = parsed.port
    except (httpx.InvalidURL, ValueError) as e:  # IDNA errors are UnicodeErrors, which are ValueErrors
        raise FetchError(f"invalid URL {short(url)}: {e}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise FetchError(f"refused {short(url)}: only http(s) URLs with a host can be visited")
    host = parsed.raw_host.decode("ascii", errors="replace").lower()
    if reason := bad_host(host):
        raise FetchError(f"invalid host in {short(url)}: {reason}")
    if port is not None and not 0 < port < 65536:
        raise FetchError(f"invalid port {port} in {short(url)}")
    return parsed


def bad_host(host: str) -> str | None:
    """Why `host` (ASCII, IDNA-encoded) cannot be a host name or address, or None when it can."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
        return None
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253:
        return f"a name of {len(name)} characters (at most 253)"
    for label in name.split("."):
        if not _LABEL.match(label):
            return f"label {label[:70]!r} is empty, longer than 63 characters or not letters, digits and hyphens"
    return None


def redirect_target(url: str, location: str) -> str:
    """The absolute URL a redirect's Location points to, or FetchError when it is not one (pin checks it further)."""
    try:
        return str(httpx.URL(url).join(location.strip()))
    except (httpx.InvalidURL, ValueError) as e:
        raise FetchError(f"{short(url)} redirects to an invalid URL {short(location)}: {e}") from None


def non_public(address: str) -> str | None:
    """Why an IP address is not a public one ('private', 'loopback', ...), or None if it is public."""
    ip = ipaddress.ip_address(address.split("%")[0])  # drop an IPv6 zone index (fe80::1%eth0)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for reason in ("loopback", "link_local", "multicast", "private", "reserved", "unspecified"):
        if getattr(ip, f"is_{reason}"):
            return reason.replace("_", "-")
    return None if ip.is_global else "non-global"


def decode(body: bytes, charset: str | None) -> str:
    """HTML bytes as text: the header's charset, else a <meta charset> near the top, else UTF-8."""
    if charset is None and (m := _META_CHARSET.search(body[:2048])):
        charset = m.group(1).decode("ascii")
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except (LookupError, ValueError):  # a charset Python does not know, or a codec that is not for text ("idna")
        return body.decode("utf-8", errors="replace")
