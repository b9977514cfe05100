"""The OpenAI-compatible chat endpoint, with deadzone's contract.

    POST {DEADZONE_AGENT_ENDPOINT}/chat/completions
      {"model": $DEADZONE_AGENT_ENDPOINT_MODEL, "messages": [system, user], "temperature": 0,
       "stream": false, "reasoning_effort": "minimal", "chat_template_kwargs": {"enable_thinking": false}}
      Authorization: Bearer $DEADZONE_AGENT_ENDPOINT_API_KEY      (only when set; never printed)
    → choices[0].message.content

    GET {endpoint}/models     the ping: before the first request that the answer cache cannot serve,
                              so a wrong URL, a server that is down or a rejected key fails the slot
                              in seconds (one attempt, short timeouts), with a message saying what to set

Each chat request gets the fetcher's retry policy (FetchSettings' retries and backoff through
deadzone_build/retry.py, the server's Retry-After on 429/5xx) on timeouts, connection errors, 429,
5xx and malformed answers (not JSON, or no choices[0].message.content), a read timeout of $DEADZONE_AGENT_TIMEOUT seconds (default 120) and
a deadline over all attempts (4 × that). When they are used up, `chat` raises `EndpointFailed` and the
caller keeps the deterministic markdown for that section.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx

from deadzone_build import __version__
from deadzone_build.errors import ScrapeError
from deadzone_build.sources.agent.route import API_KEY_ENV, ENDPOINT_ENV, TIMEOUT_ENV, Route
from deadzone_build.retry import backoff, server_wait
from deadzone_build.sources.fetch import FetchSettings

DEFAULT_TIMEOUT = 120.0
PING_TIMEOUT = 5.0
# The prompt PROMPT_VERSION (route.py) names; tests/test_agent_endpoint.py pins its digest.
SYSTEM_PROMPT = (
    "You convert one section of a software documentation page, already extracted from HTML to "
    "markdown, into clean markdown for a search index.\n"
    "Rules:\n"
    "- Keep every heading, paragraph, list and table; keep their meaning and order.\n"
    "- Copy every fenced code block exactly, character for character, with its fence and language.\n"
    "- Never invent, complete or merge code blocks; never add content that is not in the input.\n"
    "- Remove leftovers of site navigation, cookie banners, 'edit this page' or 'previous/next' links.\n"
    "- Answer with the markdown only: no preamble, no explanation, no surrounding code fence."
)


class EndpointFailed(Exception):
    """One request gave no usable answer within its retries and deadline (the section falls back)."""


@dataclass(frozen=True)
class EndpointSettings:
    connect_timeout: float = 10.0
    read_timeout: float = DEFAULT_TIMEOUT
    retries: int = 4
    backoff_base: float = 0.5
    max_retry_after: float = 60.0
    deadline: float = 4 * DEFAULT_TIMEOUT  # seconds over all attempts of one request
    max_input_bytes: int = 48 * 1024  # per request: longer pages are split by section, never cut

    @classmethod
    def from_env(cls, fetch: FetchSettings, environ: dict[str, str] | None = None) -> EndpointSettings:
        """The fetcher's retry policy with the endpoint's own timeout ($DEADZONE_AGENT_TIMEOUT)."""
        env = os.environ if environ is None else environ
        raw = env.get(TIMEOUT_ENV, "").strip()
        try:
            timeout = float(raw) if raw else DEFAULT_TIMEOUT
        except ValueError:
            timeout = -1.0
        if not timeout > 0:
            raise ScrapeError(f"{TIMEOUT_ENV}={raw!r} is not a positive number of seconds; fix or unset it "
                              f"(default {DEFAULT_TIMEOUT:g}).")
        return cls(connect_timeout=fetch.connect_timeout, read_timeout=timeout, retries=fetch.retries,
                   backoff_base=fetch.backoff_base, max_retry_after=fetch.max_retry_after, deadline=4 * timeout)


def request_body(model: str, section: str) -> dict[str, Any]:
    """The exact JSON sent for one section (also what the answer cache is keyed by)."""
    return {"model": model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": section}],
            "temperature": 0, "stream": False, "reasoning_effort": "minimal",
            "chat_template_kwargs": {"enable_thinking": False}}


class Endpoint:
    """A chat client for one route. Thread-safe (httpx.Client is); the ping runs once."""

    def __init__(self, route: Route, settings: EndpointSettings, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        if route.endpoint is None or route.model is None:
            raise ValueError("Endpoint needs an endpoint route (URL and model)")
        self.route = route
        self.settings = settings
        self._sleep = sleep
        self._clock = clock
        headers = {"User-Agent": f"deadzone-build/{__version__}", "Content-Type": "application/json"}
        if route.api_key:
            headers["Authorization"] = f"Bearer {route.api_key}"
        # trust_env=False: no proxy or .netrc surprises (and no credential but the one configured)
        self._client = httpx.Client(headers=headers, trust_env=False, follow_redirects=False, timeout=httpx.Timeout(
            settings.read_timeout, connect=settings.connect_timeout, pool=None))
        self._pinged = False

    def __repr__(self) -> str:
        return f"Endpoint({self.route!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ── ping ────────────────────────────────────────────────────────────────

    def ping(self) -> None:
        """GET {endpoint}/models once, fast; a ScrapeError saying what to fix when it fails."""
        if self._pinged:
            return
        url = f"{self.route.endpoint}/models"
        hint = (f"check {ENDPOINT_ENV} (the API base, e.g. http://127.0.0.1:8080/v1), or unset it to build "
                "with deterministic extraction")
        try:
            response = self._client.get(url, timeout=httpx.Timeout(PING_TIMEOUT, connect=PING_TIMEOUT))
        except httpx.HTTPError as exc:
            raise ScrapeError(f"agent endpoint {self.route.endpoint} does not answer ({type(exc).__name__}: "
                              f"{exc or 'no detail'}); {hint}.") from None
        if response.status_code in (401, 403):
            raise ScrapeError(f"agent endpoint {self.route.endpoint} refused the request (HTTP {response.status_code}); "
                              f"set {API_KEY_ENV} to a key it accepts.")
        if not response.is_success:
            raise ScrapeError(f"agent endpoint {url} answered HTTP {response.status_code}; {hint}.")
        self._pinged = True

    # ── chat ────────────────────────────────────────────────────────────────

    def chat(self, body: dict[str, Any]) -> str:
        """choices[0].message.content of the answer to `body`, with retries; EndpointFailed otherwise."""
        self.ping()
        settings = self.settings
        started = self._clock()
        attempts = settings.retries + 1
        last = "no attempt made"
        for attempt in range(1, attempts + 1):
            remaining = settings.deadline - (self._clock() - started)
            if remaining <= 0:
                raise EndpointFailed(f"deadline of {settings.deadline:g} s passed after {attempt - 1} attempts "
                                     f"(last: {last})")
            outcome = self._attempt(body, min(settings.read_timeout, remaining))
            if isinstance(outcome, str):
                return outcome
            last, retry_after = outcome
            if attempt < attempts:
                wait = retry_after if retry_after is not None else backoff(attempt, settings.backoff_base,
                                                                           settings.max_retry_after)
                self._sleep(min(wait, settings.max_retry_after, max(0.0, remaining)))
        raise EndpointFailed(f"{last}, {attempts} attempt{'s' * (attempts > 1)}")

    def _attempt(self, body: dict[str, Any], read_timeout: float) -> str | tuple[str, float | None]:
        """The answer text, or (reason, Retry-After) for a failure worth retrying."""
        url = f"{self.route.endpoint}/chat/completions"
        try:
            response = self._client.post(url, json=body, timeout=httpx.Timeout(
                read_timeout, connect=self.settings.connect_timeout, pool=None))
        except httpx.TimeoutException:
            return f"no answer within {read_timeout:g} s ({TIMEOUT_ENV})", None
        except httpx.HTTPError as exc:
            return f"request failed ({type(exc).__name__}: {exc or 'no detail'})", None
        if response.status_code == 429 or response.status_code >= 500:
            return f"HTTP {response.status_code}", server_wait(response.headers)
        if not response.is_success:  # 4xx: the same request would get the same refusal
            raise EndpointFailed(f"HTTP {response.status_code} ({response.text[:200]!r}), not retried")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return f"malformed answer (not an OpenAI chat completion: {response.text[:80]!r})", None
        if not isinstance(content, str) or not content.strip():
            return "empty answer (choices[0].message.content)", None
        return content

