"""Fetching documents over HTTP: one result per URL, never an exception for one bad URL.

    make_client(settings, rewrite=, token=) -> httpx.Client   rewrite + GitHub token live in its transport
    shared_client(settings)                 -> httpx.Client   one per process (and settings), closed at exit
    fetch_all(urls, client, settings)       -> [FetchResult]   input order, bounded concurrency, retries
    slot_failure(results)                   -> str | None      the policy: when a slot gives up

Retried with exponential backoff: timeouts, connection errors, truncated bodies, 429 and 5xx
(and a 403 that carries Retry-After or an exhausted rate limit). `Retry-After` (seconds or an
HTTP date) replaces the backoff, and so does an exhausted GitHub rate limit's `x-ratelimit-reset`,
both capped by `max_retry_after` (the shared rules are in deadzone_build/retry.py).
Dropped at once: 404/410, other 4xx, a body over `max_bytes` (counted while decoding, so a
compression bomb never takes more than the cap), a body the source's `Accept` refuses (for docs:
an HTML page, an empty body, a binary or non-UTF-8 body), a redirect to a host it may not go to. The default `Accept` is
any UTF-8 text (what every kind got before); `github-md`/`github-rst` pass `DOC_ACCEPT`, and
`binary=True` keeps the raw body of any file.

A drop is *retryable* (`FetchResult.retryable`) when its cause may go away by itself: 5xx, 429,
timeouts, connection errors, truncated bodies, a deadline. The pipeline marks an artifact built
with such a drop `incomplete` (never current, never cached, not released without
`--allow-incomplete`); permanent drops (404/410, not text) are final.

Deadlines: each document has `doc_deadline` seconds in all (attempts and waits included), each
slot `slot_deadline`; a read that drips bytes forever cannot outlive them. Both come from
$DEADZONE_DOC_DEADLINE / $DEADZONE_SLOT_DEADLINE (`FetchSettings.from_env`).

Redirects are followed by hand (at most 10) only to an http(s) URL on the same host, from one
GitHub host to another (github.com, api.github.com, *.githubusercontent.com), or into a prefix
or target of $DEADZONE_URL_REWRITE; never from https to http. The final URL is reported.

When every URL of two slots in a row failed to connect, the network looks unreachable: later
slots try their first URL once, and if that fails too, drop every URL without waiting out retries.

The client (`make_client`: rewrites and the token on the wire only) and the redirect rule live in
sources/transport.py, the network-health memory in sources/network.py, body reading and the
per-kind content checks in sources/body.py, the slot policy and drop lines in sources/policy.py;
this module re-exports their public names.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import math
import os
import queue
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Callable, Iterator, Sequence

import httpx

from deadzone_build.errors import FetchError
from deadzone_build.retry import backoff, is_rate_limited, server_wait
from deadzone_build.settings import github_token
from deadzone_build.sources.network import (  # noqa: F401 - part of this module's interface
    OFFLINE_HINT, UNREACHABLE_AFTER_SLOTS, _health, network_looks_unreachable, offline_hint, reset_network_health)
from deadzone_build.sources.transport import (  # noqa: F401 - part of this module's interface
    CLIENT_REWRITES, REWRITE_ENV, REWRITE_FORM, USER_AGENT, is_github_url, make_client, parse_rewrite,
    redirect_problem, rewrite_from_env, rewrite_url)
from deadzone_build.sources.policy import (  # noqa: F401 - part of this module's interface
    MAX_DROP_FRACTION, describe_drop, incomplete_urls, slot_failure)
from deadzone_build.sources.body import (BINARY_ACCEPT, DOC_ACCEPT, TEXT_ACCEPT, Accept, DeadlinePassed, TooLarge,
                                         UndecodableBody, body_problem, media_problem, read_bounded)


_GONE = frozenset({404, 410})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})  # not 304 Not Modified (a conditional fetch's answer)
DOC_DEADLINE_ENV = "DEADZONE_DOC_DEADLINE"
SLOT_DEADLINE_ENV = "DEADZONE_SLOT_DEADLINE"
DEFAULT_DOC_DEADLINE = 120.0
DEFAULT_SLOT_DEADLINE = 1800.0
MAX_REDIRECTS = 10


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
    doc_deadline: float = DEFAULT_DOC_DEADLINE  # seconds per document, every attempt and wait included
    slot_deadline: float = DEFAULT_SLOT_DEADLINE  # seconds per fetch_all call (one slot)

    def __post_init__(self) -> None:
        problems = [name for name, ok in (
            ("connect_timeout", self.connect_timeout > 0), ("read_timeout", self.read_timeout > 0),
            ("retries", self.retries >= 0), ("backoff_base", self.backoff_base >= 0),
            ("max_retry_after", self.max_retry_after >= 0), ("max_bytes", self.max_bytes > 0),
            ("concurrency", self.concurrency >= 1), ("doc_deadline", self.doc_deadline > 0),
            ("slot_deadline", self.slot_deadline > 0)) if not ok]
        if problems:
            raise FetchError(f"FetchSettings: invalid {', '.join(problems)} ({self}); timeouts, deadlines, "
                             "max_bytes and concurrency must be positive, the others not negative.")

    @classmethod
    def from_env(cls, **overrides: float | int) -> FetchSettings:
        """The defaults, with the deadlines of $DEADZONE_DOC_DEADLINE / $DEADZONE_SLOT_DEADLINE (seconds)."""
        values: dict[str, float | int] = {}
        for name, env in (("doc_deadline", DOC_DEADLINE_ENV), ("slot_deadline", SLOT_DEADLINE_ENV)):
            text = os.environ.get(env, "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if not (math.isfinite(value) and value > 0):
                raise FetchError(f"{env}={text!r} is not a number of seconds; set e.g. {env}=120 or unset it.")
            values[name] = value
        return cls(**{**values, **overrides})


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
    final_url: str | None = None  # where the redirects ended, when they did (None: no redirect)
    retryable: bool = False  # a drop whose cause may pass (5xx, 429, timeout, network, deadline)
    unreachable: bool = False  # a drop because no connection could be made (DNS, refused)
    content: bytes | None = None  # the raw body, for `binary=True` / a non-text Accept (text stays None)

    def report(self) -> dict[str, object]:
        """The per-URL entry of meta.json: no text, no timings, no attempt count (all vary).

        `final_url` and `retryable` appear only when set, so the report of a plain successful
        fetch (and so the artifact's bytes) is what it always was."""
        entry: dict[str, object] = {"url": self.url, "status": "ok" if self.ok else "dropped",
                                    "http_status": self.http_status, "bytes": self.bytes, "sha256": self.sha256,
                                    "reason": self.reason}
        if self.final_url and self.final_url != self.url:
            entry["final_url"] = self.final_url
        if not self.ok and self.retryable:
            entry["retryable"] = True
        return entry


# ── one client per process ───────────────────────────────────────────────────
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
    unreachable: bool = False  # no connection could be made at all


def fetch_all(urls: Sequence[str], client: httpx.Client, settings: FetchSettings,
              on_result: Callable[[FetchResult], None] | None = None,
              sleep: Callable[[float], None] = time.sleep, accept: Accept = TEXT_ACCEPT) -> list[FetchResult]:
    """Fetch every URL (at most `settings.concurrency` at once); results in input order.

    A URL that fails is a dropped FetchResult, never an exception. `on_result` is called in the
    calling thread, in completion order, once per URL (for progress). `sleep` waits between retries.
    `accept` says which bodies the source takes (default: any UTF-8 text). All of it
    ends by `settings.slot_deadline`.
    """
    if not urls:
        return []
    slot_deadline = time.monotonic() + settings.slot_deadline
    if _health.offline():
        probe = fetch_one(urls[0], client, dataclasses.replace(settings, retries=0), sleep, accept,
                          deadline=slot_deadline)
        if probe.unreachable:
            results = [probe] + [FetchResult(url, ok=False, retryable=True, unreachable=True,
                                             reason=f"not tried: {OFFLINE_HINT}; retry when online.")
                                 for url in urls[1:]]
            for result in results:
                if on_result is not None:
                    on_result(result)
            _health.record(results)
            return results
    results: list[FetchResult | None] = [None] * len(urls)
    for index, result in _in_daemon_threads(urls, min(settings.concurrency, len(urls)),
                                            lambda url: fetch_one(url, client, settings, sleep, accept,
                                                                  deadline=slot_deadline)):
        results[index] = result
        if on_result is not None:
            on_result(result)
    done = [result for result in results if result is not None]
    _health.record(done)
    return done


def _in_daemon_threads(urls: Sequence[str], workers: int,
                       work: Callable[[str], FetchResult]) -> Iterator[tuple[int, FetchResult]]:
    """(index, result) in completion order, from `workers` daemon threads.

    Daemon threads, not a ThreadPoolExecutor: the interpreter joins an executor's threads at exit,
    so a Ctrl-C during a stalled read (the shared client stays open) waited out every read timeout
    and retry before the process could end. An abandoned daemon thread just dies with it."""
    jobs: queue.SimpleQueue[tuple[int, str] | None] = queue.SimpleQueue()
    done: queue.SimpleQueue[tuple[int, FetchResult | BaseException]] = queue.SimpleQueue()
    stop = threading.Event()
    for item in enumerate(urls):
        jobs.put(item)

    def worker() -> None:
        while not stop.is_set():
            item = jobs.get()
            if item is None:
                return
            index, url = item
            try:
                done.put((index, work(url)))
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                done.put((index, exc))

    for n in range(workers):
        jobs.put(None)
        threading.Thread(target=worker, name=f"fetch-{n}", daemon=True).start()
    try:
        for _ in urls:
            index, outcome = done.get()
            if isinstance(outcome, BaseException):
                raise outcome
            yield index, outcome
    finally:
        stop.set()  # no new URL starts after an interrupt or an error


def fetch_one(url: str, client: httpx.Client, settings: FetchSettings,
              sleep: Callable[[float], None] = time.sleep, accept: Accept = TEXT_ACCEPT, *,
              deadline: float | None = None, binary: bool = False,
              headers: dict[str, str] | None = None) -> FetchResult:
    """One URL with retries, within `settings.doc_deadline` (and `deadline`, a time.monotonic()
    instant, when given); never raises for an HTTP or network failure.

    `binary=True` keeps the raw body in `content` (no text checks): for archives such as a Go
    module zip (the same as `accept=BINARY_ACCEPT`). `headers` are extra request headers (e.g.
    If-None-Match); a 304 answer is an ok result with `http_status=304`."""
    accept = BINARY_ACCEPT if binary else accept
    own = time.monotonic() + settings.doc_deadline
    until = own if deadline is None else min(own, deadline)
    attempts = settings.retries + 1
    made = 0
    outcome: _Retry = _Retry(_deadline_reason(settings, before_start=True))
    while made < attempts:
        if time.monotonic() >= until:
            if made:
                outcome = dataclasses.replace(outcome, reason=f"{outcome.reason}; then {_deadline_reason(settings)}")
            break
        made += 1
        attempt = _attempt(url, client, settings, accept, until, headers)
        if isinstance(attempt, FetchResult):
            attempt.attempts = made
            return attempt
        outcome = attempt
        if made < attempts:
            wait = _retry_wait(outcome, made, settings)
            if time.monotonic() + wait >= until:
                outcome = dataclasses.replace(outcome, reason=f"{outcome.reason}; {_deadline_reason(settings)}")
                break
            sleep(wait)
    return FetchResult(url, ok=False, http_status=outcome.http_status, attempts=made, retryable=True,
                       unreachable=outcome.unreachable,
                       reason=f"{outcome.reason}, {made} attempt{'s' * (made != 1)}; retry later.")


def _deadline_reason(settings: FetchSettings, before_start: bool = False) -> str:
    what = "before this document could be fetched" if before_start else "before it could be retried"
    return (f"the fetch deadline passed {what} ({DOC_DEADLINE_ENV}={settings.doc_deadline:g} s per document, "
            f"{SLOT_DEADLINE_ENV}={settings.slot_deadline:g} s per slot)")


def _retry_wait(retry: _Retry, attempt: int, settings: FetchSettings) -> float:
    if retry.retry_after is not None:
        return min(retry.retry_after, settings.max_retry_after)
    return backoff(attempt, settings.backoff_base, settings.max_retry_after)


def _attempt(url: str, client: httpx.Client, settings: FetchSettings, accept: Accept,
             deadline: float, headers: dict[str, str] | None = None) -> FetchResult | _Retry:
    rewrite = CLIENT_REWRITES.get(client, ())
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            with client.stream("GET", current, headers=headers) as response:
                if response.status_code in _REDIRECTS and "Location" in response.headers:
                    target = str(response.url.join(response.headers["Location"]))
                    problem = redirect_problem(current, target, rewrite)
                    if problem:
                        result = _dropped(url, response.status_code, problem)
                        result.final_url = target
                        return result
                    current = target
                    continue
                outcome = _read_response(url, response, settings, accept, deadline)
                if isinstance(outcome, FetchResult) and current != url:
                    outcome.final_url = current
                return outcome
        return _dropped(url, None, f"more than {MAX_REDIRECTS} redirects; point the registry at the final URL.")
    except DeadlinePassed:
        return _Retry(f"the server sends too slowly: still reading when the fetch deadline passed "
                      f"({DOC_DEADLINE_ENV}={settings.doc_deadline:g} s per document, "
                      f"{SLOT_DEADLINE_ENV}={settings.slot_deadline:g} s per slot)")
    except httpx.TimeoutException as exc:
        return _Retry(_timeout_reason(exc, settings), unreachable=isinstance(exc, httpx.ConnectTimeout))
    except httpx.RemoteProtocolError as exc:
        return _Retry(f"the server broke off the response ({exc})")
    except UndecodableBody as exc:
        return _Retry(f"the compressed body could not be decoded ({exc})")
    except (httpx.NetworkError, httpx.ProxyError, httpx.DecodingError) as exc:
        return _Retry(f"network error ({type(exc).__name__}: {exc})", unreachable=isinstance(exc, httpx.ConnectError))
    except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
        # bad scheme, malformed URL or host (an empty or bad IDNA label is a UnicodeError): retrying cannot help
        return _dropped(url, None, f"cannot request this URL ({type(exc).__name__}: {exc}); fix it in the registry.")


def _timeout_reason(exc: httpx.TimeoutException, settings: FetchSettings) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"timed out connecting (limit {settings.connect_timeout:g} s)"
    return f"timed out waiting for data (read timeout {settings.read_timeout:g} s)"


def _read_response(url: str, response: httpx.Response, settings: FetchSettings, accept: Accept,
                   deadline: float) -> FetchResult | _Retry:
    status = response.status_code
    label = _status_label(status)
    if status in _GONE:
        return _dropped(url, status, f"{label}: the document is not at this URL; fix or remove it in the registry.")
    limited = is_rate_limited(status, response.headers)
    # GitHub's primary limit names its reset instead of sending Retry-After (retry.server_wait)
    reset = server_wait(response.headers) if limited and "Retry-After" not in response.headers else None
    if reset is not None and reset > settings.max_retry_after:
        result = _dropped(url, status, f"{label}: the API rate limit is exhausted and resets in {reset:.0f} s "
                                       f"(longer than max_retry_after {settings.max_retry_after:g} s); "
                                       "set GITHUB_TOKEN for a higher limit or retry after the reset.")
        result.retryable = True  # it passes at the reset
        return result
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
    media = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    problem = media_problem(media, accept)
    if problem:
        return _dropped(url, status, problem)
    encodings = [e.strip().lower() for e in response.headers.get("Content-Encoding", "").split(",") if e.strip()]
    try:
        body = read_bounded(response, encodings, settings.max_bytes, deadline)
    except TooLarge:
        return _too_large(url, status, settings)
    except ValueError as exc:  # an encoding this fetcher does not decode
        return _dropped(url, status, f"{exc}; link an uncompressed copy or remove the URL.")
    result = _decode(url, status, body, accept)
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


def _decode(url: str, status: int, body: bytes, accept: Accept = TEXT_ACCEPT) -> FetchResult:
    digest = hashlib.sha256(body).hexdigest()
    problem = body_problem(body, accept)
    if problem:
        return FetchResult(url, ok=False, http_status=status, bytes=len(body), sha256=digest, reason=problem)
    if not accept.text:
        return FetchResult(url, ok=True, http_status=status, bytes=len(body), sha256=digest, content=body)
    # Universal newlines, as CommonMark reads them: the chunker only ever sees "\n".
    text = body.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    return FetchResult(url, ok=True, http_status=status, bytes=len(body), sha256=digest, text=text)


def _dropped(url: str, status: int | None, reason: str) -> FetchResult:
    return FetchResult(url, ok=False, http_status=status, reason=reason)


def _too_large(url: str, status: int, settings: FetchSettings) -> FetchResult:
    return _dropped(url, status, f"larger than {settings.max_bytes} bytes (the per-document cap); "
                                 "link smaller pages or raise max_bytes.")
