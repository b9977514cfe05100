"""The HTTP client of the fetcher: URL rewrites and the GitHub token on the wire only, and the
redirect rule (which hosts a document may redirect to).

`DEADZONE_URL_REWRITE` and the GitHub token are applied only on the wire copy of each request,
inside the transport: the requests, responses, exceptions and reports the rest of the pipeline
sees carry the original URL and never the token. The rewrite is trusted configuration: a GitHub
URL keeps its token when it is rewritten (that is how the local test server sees it).
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Sequence
from urllib.parse import urlsplit

import httpx

from deadzone_build import __version__
from deadzone_build.errors import FetchError
from deadzone_build.settings import github_token

if TYPE_CHECKING:
    from deadzone_build.sources.fetch import FetchSettings

REWRITE_ENV = "DEADZONE_URL_REWRITE"
REWRITE_FORM = ("PREFIX=REPLACEMENT, several separated by ';', "
                "e.g. https://raw.githubusercontent.com/=http://127.0.0.1:8000/")
USER_AGENT = f"deadzone-build/{__version__}"

_GITHUB_HOSTS = frozenset({"github.com", "api.github.com", "githubusercontent.com"})
_GITHUB_SUFFIX = ".githubusercontent.com"


def parse_rewrite(value: str) -> list[tuple[str, str]]:
    """`"A=B;C=D"` → `[("A", "B"), ("C", "D")]`. Empty pairs are ignored; a malformed one is a FetchError."""
    pairs = []
    for item in (part.strip() for part in value.split(";")):
        if not item:
            continue
        prefix, sep, target = (side.strip() for side in item.partition("="))
        problem = "it has no '='" if not sep else (_url_problem("prefix", prefix)
                                                   or _url_problem("replacement", target))
        if problem:
            raise FetchError(f"{REWRITE_ENV}: cannot use the pair {item!r}: {problem}. "
                             f"Expected {REWRITE_FORM}. Fix the variable or unset it.")
        pairs.append((prefix, target))
    return pairs


def _url_problem(side: str, url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        return f"the {side} {url!r} is not an http(s) URL with a host"
    return None


def rewrite_from_env() -> list[tuple[str, str]]:
    """The pairs of $DEADZONE_URL_REWRITE (none when unset)."""
    return parse_rewrite(os.environ.get(REWRITE_ENV, ""))


def rewrite_url(url: str, rewrite: Sequence[tuple[str, str]]) -> str:
    """Apply the longest matching prefix of `rewrite` to `url` (unchanged when none matches)."""
    matches = [pair for pair in rewrite if url.startswith(pair[0])]
    if not matches:
        return url
    prefix, target = max(matches, key=lambda pair: len(pair[0]))
    return target + url[len(prefix):]


def is_github_url(url: httpx.URL | str) -> bool:
    """True for https URLs on github.com, api.github.com or *.githubusercontent.com: where a token may go."""
    url = httpx.URL(url) if isinstance(url, str) else url
    host = url.host.lower().rstrip(".")
    return url.scheme == "https" and (host in _GITHUB_HOSTS or host.endswith(_GITHUB_SUFFIX))


class _RewriteTransport(httpx.BaseTransport):
    """Sends a copy of each request with its URL rewritten and, for GitHub URLs, the token.

    The decision uses the URL the client asked for, so a GitHub URL rewritten to a mirror keeps
    its token and a lookalike host never gets it. httpx re-attaches the original request to the
    response and to any error, so neither the rewrite nor the token leaks out of here.
    """

    def __init__(self, inner: httpx.BaseTransport, rewrite: Sequence[tuple[str, str]], token: str | None) -> None:
        self._inner = inner
        self._rewrite = tuple(rewrite)
        self._token = token

    def __repr__(self) -> str:  # never show the token
        return f"<_RewriteTransport rewrite={self._rewrite!r} token={'set' if self._token else 'unset'}>"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(self._wire_request(request))

    def _wire_request(self, request: httpx.Request) -> httpx.Request:
        url = httpx.URL(rewrite_url(str(request.url), self._rewrite))
        headers = request.headers.copy()
        headers["Host"] = url.netloc.decode("ascii")  # the server we actually talk to
        if self._token and is_github_url(request.url):
            headers["Authorization"] = f"Bearer {self._token}"
        return httpx.Request(request.method, url, headers=headers, stream=request.stream,
                             extensions=request.extensions)

    def close(self) -> None:
        self._inner.close()


def make_client(settings: FetchSettings, *, rewrite: list[tuple[str, str]] | None = None,
                token: str | None = None) -> httpx.Client:
    """An httpx client with the settings' timeouts, the URL rewrite and the GitHub token.

    `rewrite=None` reads $DEADZONE_URL_REWRITE and `token=None` reads $GITHUB_TOKEN/$GH_TOKEN;
    pass `[]` or `""` to use none. Environment proxies and .netrc are ignored (`trust_env=False`):
    a proxy mount would bypass the rewriting transport.
    """
    rewrite = rewrite_from_env() if rewrite is None else rewrite
    token = github_token() if token is None else (token or None)
    # No connection cap: fetch_all's thread pool bounds concurrency, and a cap here would only
    # add pool waits when several slots share one client.
    inner = httpx.HTTPTransport(limits=httpx.Limits(max_connections=None,
                                                    max_keepalive_connections=settings.concurrency))
    timeout = httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout, pool=None)
    # Redirects are followed by `_attempt` (the host rule), and bodies decoded by `_BoundedDecoder`
    # (the cap holds while decoding): so only the encodings it knows are asked for.
    client = httpx.Client(transport=_RewriteTransport(inner, rewrite, token), timeout=timeout,
                          follow_redirects=False, trust_env=False,
                          headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"})
    CLIENT_REWRITES[client] = tuple(rewrite)
    return client


CLIENT_REWRITES: weakref.WeakKeyDictionary[httpx.Client, tuple[tuple[str, str], ...]] = weakref.WeakKeyDictionary()



# ── redirects ────────────────────────────────────────────────────────────────


def _in_rewrite(url: str, rewrite: Sequence[tuple[str, str]]) -> bool:
    return any(url.startswith(prefix) or url.startswith(target) for prefix, target in rewrite)


def redirect_problem(source: str, target: str, rewrite: Sequence[tuple[str, str]] = ()) -> str | None:
    """Why a redirect from `source` to `target` is not followed, or None when it may be.

    Followed: http(s) to the same host, between GitHub's own hosts, or into a prefix or target
    of DEADZONE_URL_REWRITE (trusted configuration). Never https → http, never credentials.
    """
    src, dst = urlsplit(source), urlsplit(target)
    fix = "point the registry at the final URL if it is the right one"
    if dst.scheme not in ("http", "https"):
        return f"redirected to {target!r}, which is not an http(s) URL; {fix}."
    if dst.username is not None or dst.password is not None:
        return f"redirected to a URL carrying credentials ({dst.hostname}); {fix}."
    if _in_rewrite(target, rewrite):
        return None
    if src.scheme == "https" and dst.scheme == "http":
        return f"redirected from https to plain http ({target}); {fix}."
    src_host, dst_host = (src.hostname or "").lower().rstrip("."), (dst.hostname or "").lower().rstrip(".")
    if src_host == dst_host or (_github_host(src_host) and _github_host(dst_host)):
        return None
    return (f"redirected to another host ({target}); redirects are followed only within the same host, "
            f"between GitHub's hosts or into DEADZONE_URL_REWRITE; {fix}.")


def _github_host(host: str) -> bool:
    return host in _GITHUB_HOSTS or host.endswith(_GITHUB_SUFFIX)
