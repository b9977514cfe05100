"""Fetching documents over HTTP: one result per URL, never an exception for one bad URL.

    make_client(settings, rewrite=, token=) -> httpx.Client   rewrite + GitHub token live in its transport
    shared_client(settings)                 -> httpx.Client   one per process (and settings), closed at exit
    fetch_all(urls, client, settings)       -> [FetchResult]   input order, bounded concurrency, retries
    slot_failure(results)                   -> str | None      the policy: when a slot gives up

Retried with exponential backoff: timeouts, connection errors, truncated bodies, 429 and 5xx
(and a 403 that carries Retry-After or an exhausted rate limit). `Retry-After` (seconds or an
HTTP date) replaces the backoff, and so does an exhausted GitHub rate limit's `x-ratelimit-reset`,
both capped by `max_retry_after` (the shared rules are in deadzone_build/retry.py).
Dropped at once: 404/410, other 4xx, a body over `max_bytes`, a binary or non-UTF-8 body.

`DEADZONE_URL_REWRITE` and the GitHub token are applied only on the wire copy of each request,
inside the transport: the requests, responses, exceptions and reports the rest of the pipeline
sees carry the original URL and never the token. The rewrite is trusted configuration: a GitHub
URL keeps its token when it is rewritten (that is how the local test server sees it).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from http import HTTPStatus
from typing import Callable, Sequence
from urllib.parse import urlsplit

import httpx

from deadzone_build import __version__
from deadzone_build.errors import FetchError
from deadzone_build.retry import backoff, is_rate_limited, server_wait
from deadzone_build.settings import github_token

REWRITE_ENV = "DEADZONE_URL_REWRITE"
REWRITE_FORM = ("PREFIX=REPLACEMENT, several separated by ';', "
                "e.g. https://raw.githubusercontent.com/=http://127.0.0.1:8000/")
# A slot fails when more than this fraction of its URLs were dropped (or all of them).
MAX_DROP_FRACTION = 0.5
USER_AGENT = f"deadzone-build/{__version__}"

_GITHUB_HOSTS = frozenset({"github.com", "api.github.com", "githubusercontent.com"})
_GITHUB_SUFFIX = ".githubusercontent.com"
_GONE = frozenset({404, 410})
_LISTED_IN_MESSAGE = 10


@dataclass(frozen=True)
class FetchSettings:
    """Limits of one fetch. `retries` counts attempts after the first (4 → up to 5 requests);
    the wait before retry n is `backoff_base * 2**(n-1)` seconds unless the server sent Retry-After."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 4
    backoff_base: float = 0.5
    max_retry_after: float = 60.0
    max_bytes: int = 5 * 1024 * 1024
    concurrency: int = 8

    def __post_init__(self) -> None:
        problems = [name for name, ok in (
            ("connect_timeout", self.connect_timeout > 0), ("read_timeout", self.read_timeout > 0),
            ("retries", self.retries >= 0), ("backoff_base", self.backoff_base >= 0),
            ("max_retry_after", self.max_retry_after >= 0), ("max_bytes", self.max_bytes > 0),
            ("concurrency", self.concurrency >= 1)) if not ok]
        if problems:
            raise FetchError(f"FetchSettings: invalid {', '.join(problems)} ({self}); timeouts, max_bytes "
                             "and concurrency must be positive, the others not negative.")


@dataclass
class FetchResult:
    """What happened to one URL. `text` is decoded UTF-8 (BOM stripped, newlines → LF);
    `bytes`/`sha256` describe the raw body when it arrived whole, else 0/None."""

    url: str
    ok: bool
    http_status: int | None = None
    bytes: int = 0
    sha256: str | None = None
    text: str | None = None
    reason: str | None = None
    attempts: int = 0
    content_type: str | None = None  # the response's media type, lowercased, without parameters
    etag: str | None = None  # validators, for conditional requests (deadzone-build lock)
    last_modified: str | None = None
    content: bytes | None = None  # the raw body, only for `binary=True` fetches (text stays None)

    def report(self) -> dict[str, object]:
        """The per-URL entry of meta.json: no text, no timings, no attempt count (all vary)."""
        return {"url": self.url, "status": "ok" if self.ok else "dropped", "http_status": self.http_status,
                "bytes": self.bytes, "sha256": self.sha256, "reason": self.reason}


# ── configuration: rewrite and token ────────────────────────────────────────


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
    return httpx.Client(transport=_RewriteTransport(inner, rewrite, token), timeout=timeout,
                        follow_redirects=True, max_redirects=10, trust_env=False,
                        headers={"User-Agent": USER_AGENT})


_shared_clients: dict[tuple[FetchSettings, tuple[tuple[str, str], ...], str], httpx.Client] = {}
_shared_lock = threading.Lock()


def shared_client(settings: FetchSettings) -> httpx.Client:
    """The process's client for these settings and the environment's rewrite and token.

    Building a client costs an SSL context (certifi's bundle parsed: ~16 ms, more than a small
    slot's whole fetch), so the slots of a run share one; its pool keeps connections per host
    alive between slots. Closed at interpreter exit; callers must not close it.
    """
    rewrite, token = tuple(rewrite_from_env()), github_token() or ""
    key = (settings, rewrite, hashlib.sha256(token.encode()).hexdigest())  # the token itself is never kept as a key
    with _shared_lock:
        client = _shared_clients.get(key)
        if client is None or client.is_closed:
            client = _shared_clients[key] = make_client(settings, rewrite=list(rewrite), token=token)
        return client


def close_shared_clients() -> None:
    """Close every shared client (at exit; tests call it to start from none)."""
    with _shared_lock:
        clients = list(_shared_clients.values())
        _shared_clients.clear()
    for client in clients:
        client.close()


atexit.register(close_shared_clients)


# ── fetching ─────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class _Retry:
    """An attempt that failed in a way worth retrying."""

    reason: str
    http_status: int | None = None
    retry_after: float | None = None


def fetch_all(urls: Sequence[str], client: httpx.Client, settings: FetchSettings,
              on_result: Callable[[FetchResult], None] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> list[FetchResult]:
    """Fetch every URL (at most `settings.concurrency` at once); results in input order.

    A URL that fails is a dropped FetchResult, never an exception. `on_result` is called in the
    calling thread, in completion order, once per URL (for progress). `sleep` waits between retries.
    """
    if not urls:
        return []
    results: list[FetchResult | None] = [None] * len(urls)
    pool = ThreadPoolExecutor(max_workers=min(settings.concurrency, len(urls)), thread_name_prefix="fetch")
    try:
        futures: dict[Future[FetchResult], int] = {
            pool.submit(fetch_one, url, client, settings, sleep): index for index, url in enumerate(urls)}
        for future in as_completed(futures):
            result = future.result()
            results[futures[future]] = result
            if on_result is not None:
                on_result(result)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C should not wait out every backoff
        raise
    pool.shutdown()
    return [result for result in results if result is not None]


def fetch_one(url: str, client: httpx.Client, settings: FetchSettings,
              sleep: Callable[[float], None] = time.sleep, *, binary: bool = False,
              headers: dict[str, str] | None = None) -> FetchResult:
    """One URL with retries; never raises for an HTTP or network failure.

    `binary=True` keeps the raw body in `content` (no text checks): for archives such as a Go
    module zip. Everything else (retries, caps, rewrite, token) is the same. `headers` are extra
    request headers (e.g. If-None-Match); a 304 answer is an ok result with `http_status=304`."""
    attempts = settings.retries + 1
    for attempt in range(1, attempts + 1):
        outcome = _attempt(url, client, settings, binary, headers)
        if isinstance(outcome, FetchResult):
            outcome.attempts = attempt
            return outcome
        if attempt < attempts:
            sleep(_retry_wait(outcome, attempt, settings))
    return FetchResult(url, ok=False, http_status=outcome.http_status, attempts=attempts,
                       reason=f"{outcome.reason}, {attempts} attempt{'s' * (attempts > 1)}; retry later.")


def _retry_wait(retry: _Retry, attempt: int, settings: FetchSettings) -> float:
    if retry.retry_after is not None:
        return min(retry.retry_after, settings.max_retry_after)
    return backoff(attempt, settings.backoff_base, settings.max_retry_after)


def _attempt(url: str, client: httpx.Client, settings: FetchSettings, binary: bool = False,
             headers: dict[str, str] | None = None) -> FetchResult | _Retry:
    try:
        with client.stream("GET", url, headers=headers) as response:
            return _read_response(url, response, settings, binary)
    except httpx.TimeoutException as exc:
        return _Retry(_timeout_reason(exc, settings))
    except httpx.RemoteProtocolError as exc:
        return _Retry(f"the server broke off the response ({exc})")
    except (httpx.NetworkError, httpx.ProxyError, httpx.DecodingError) as exc:
        return _Retry(f"network error ({type(exc).__name__}: {exc})")
    except httpx.TooManyRedirects:
        return _dropped(url, None, "too many redirects; point the registry at the final URL.")
    except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
        # bad scheme, malformed URL or host (an empty or bad IDNA label is a UnicodeError): retrying cannot help
        return _dropped(url, None, f"cannot request this URL ({type(exc).__name__}: {exc}); fix it in the registry.")


def _timeout_reason(exc: httpx.TimeoutException, settings: FetchSettings) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"timed out connecting (limit {settings.connect_timeout:g} s)"
    return f"timed out waiting for data (read timeout {settings.read_timeout:g} s)"


def _read_response(url: str, response: httpx.Response, settings: FetchSettings,
                   binary: bool = False) -> FetchResult | _Retry:
    status = response.status_code
    label = _status_label(status)
    if status in _GONE:
        return _dropped(url, status, f"{label}: the document is not at this URL; fix or remove it in the registry.")
    limited = is_rate_limited(status, response.headers)
    # GitHub's primary limit names its reset instead of sending Retry-After (retry.server_wait)
    reset = server_wait(response.headers) if limited and "Retry-After" not in response.headers else None
    if reset is not None and reset > settings.max_retry_after:
        return _dropped(url, status, f"{label}: the API rate limit is exhausted and resets in {reset:.0f} s "
                                     f"(longer than max_retry_after {settings.max_retry_after:g} s); "
                                     "set GITHUB_TOKEN for a higher limit or retry after the reset.")
    if status >= 500 or limited:
        return _Retry(label, status, server_wait(response.headers))
    if status in (401, 403):
        return _dropped(url, status, f"{label}: set GITHUB_TOKEN if the repository is private.")
    if status == 304 and _asked_conditionally(response):
        return FetchResult(url, ok=True, http_status=304, etag=response.headers.get("ETag"),
                           last_modified=response.headers.get("Last-Modified"))
    if not 200 <= status < 300:
        return _dropped(url, status, f"{label}.")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > settings.max_bytes:
        return _too_large(url, status, settings)
    body = _read_capped(response, settings.max_bytes)
    if body is None:
        return _too_large(url, status, settings)
    if binary:
        result = FetchResult(url, ok=True, http_status=status, bytes=len(body),
                             sha256=hashlib.sha256(body).hexdigest(), content=body)
    else:
        result = _decode(url, status, body)
    media = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    result.content_type = media or None
    result.etag = response.headers.get("ETag")
    result.last_modified = response.headers.get("Last-Modified")
    return result


def _asked_conditionally(response: httpx.Response) -> bool:
    """Did we ask conditionally? A 304 to a plain GET is a server bug, not "unchanged"."""
    return "if-none-match" in response.request.headers or "if-modified-since" in response.request.headers


def _status_label(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _read_capped(response: httpx.Response, max_bytes: int) -> bytes | None:
    """The body, or None as soon as it grows past `max_bytes` (so memory stays bounded)."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            return None
    return bytes(body)


def _decode(url: str, status: int, body: bytes) -> FetchResult:
    digest = hashlib.sha256(body).hexdigest()
    problem = _text_problem(body)
    if problem:
        return FetchResult(url, ok=False, http_status=status, bytes=len(body), sha256=digest, reason=problem)
    # Universal newlines, as CommonMark reads them: the chunker only ever sees "\n".
    text = body.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    return FetchResult(url, ok=True, http_status=status, bytes=len(body), sha256=digest, text=text)


def _text_problem(body: bytes) -> str | None:
    if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16 text, but only UTF-8 documents are read; link a UTF-8 copy or remove the URL."
    nul = body.find(b"\x00")
    if nul >= 0:
        return f"binary content (NUL byte at offset {nul}), not a text document; remove the URL from the registry."
    try:
        body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return (f"not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start}); "
                "link a UTF-8 copy or remove the URL.")
    return None


def _dropped(url: str, status: int | None, reason: str) -> FetchResult:
    return FetchResult(url, ok=False, http_status=status, reason=reason)


def _too_large(url: str, status: int, settings: FetchSettings) -> FetchResult:
    return _dropped(url, status, f"larger than {settings.max_bytes} bytes (the per-document cap); "
                                 "link smaller pages or raise max_bytes.")


# ── policy ───────────────────────────────────────────────────────────────────


def slot_failure(results: Sequence[FetchResult], max_drop_fraction: float = MAX_DROP_FRACTION) -> str | None:
    """Why the slot must fail, or None when it may be built from what was fetched.

    The slot fails when it has no URLs, when every URL was dropped, or when more than
    `max_drop_fraction` of them were (by default more than half: a library missing most of its
    docs is worse than the previous artifact).
    """
    if not 0 <= max_drop_fraction <= 1:
        raise ValueError(f"max_drop_fraction must be between 0 and 1, not {max_drop_fraction}")
    if not results:
        return "there are no URLs to fetch; add at least one URL to the registry entry."
    dropped = [result for result in results if not result.ok]
    if len(dropped) < len(results) and len(dropped) <= max_drop_fraction * len(results):
        return None
    how = "every URL" if len(dropped) == len(results) else f"more than {max_drop_fraction:.0%} of the URLs"
    listed = "; ".join(f"{result.url} ({result.reason})" for result in dropped[:_LISTED_IN_MESSAGE])
    more = f"; and {len(dropped) - _LISTED_IN_MESSAGE} more" if len(dropped) > _LISTED_IN_MESSAGE else ""
    return (f"{len(dropped)} of {len(results)} URLs could not be fetched ({how}): {listed}{more}. "
            "Fix or remove those URLs in the registry, or retry later if the errors were transient.")

