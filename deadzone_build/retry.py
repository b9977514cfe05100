"""When to ask an HTTP server again, and how long to wait first: one policy for every client.

Both the doc fetcher (sources/fetch.py) and the GitHub API client (publish/github.py) use these:

    parse_retry_after(value, now)          `Retry-After` (seconds or an HTTP date, RFC 9110) as seconds
    is_rate_limited(status, headers, msg)  429, or GitHub's 403 that carries a rate-limit marker
    server_wait(headers, now)              the wait the server asked for: Retry-After, else the
                                           time until `x-ratelimit-reset` once no request is left
    backoff(attempt, base, cap)            base * 2**(attempt-1), capped

GitHub documents its limits at docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api:
a primary limit answers 403 or 429 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (epoch
seconds); a secondary limit answers 403 or 429, with `Retry-After` or, failing that, "wait at least
one minute". `headers` is any mapping whose keys are lower-case or case-insensitive (httpx.Headers).
"""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime
from typing import Mapping


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP date); None if absent or unreadable.

    `now` is the epoch time an HTTP date is measured from (default: the current time); a date in
    the past means "now" (0.0)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)  # a naive date is read as UTC
    return max(0.0, seconds) if math.isfinite(seconds) else None


def is_rate_limited(status: int, headers: Mapping[str, str], message: str = "") -> bool:
    """GitHub's primary and secondary rate limits answer 429, or 403 with one of these markers
    (a 403 without them is a permission problem: asking again cannot help)."""
    if status == 429:
        return True
    return status == 403 and (headers.get("retry-after") is not None
                              or headers.get("x-ratelimit-remaining") == "0"
                              or "rate limit" in message.lower())


def server_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait the server asked for, in seconds, or None when it named none.

    `Retry-After` first; else, when `x-ratelimit-remaining` is 0, until `x-ratelimit-reset` plus one
    second (the reset second itself may still count against the limit)."""
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    if retry_after is not None:
        return retry_after
    reset = (headers.get("x-ratelimit-reset") or "").strip()
    if headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(int(reset) - (time.time() if now is None else now), 0.0) + 1.0
    return None


def backoff(attempt: int, base: float, cap: float) -> float:
    """The wait before retry `attempt` (1-based) when the server named none: doubling, capped."""
    return min(base * 2 ** (attempt - 1), cap)

