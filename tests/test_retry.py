"""The retry rules every HTTP client shares (deadzone_build/retry.py): headers in, seconds out."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from deadzone_build.retry import backoff, is_rate_limited, parse_retry_after, server_wait

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()


def test_parse_retry_after_reads_seconds_and_http_dates():
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(" 2.5 ", NOW) == 2.5
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", NOW) == 0.0  # in the past: retry now
    assert parse_retry_after("-3", NOW) == 0.0
    for unreadable in (None, "", "  ", "soon", "nan", "inf", "Thu, 99 Foo 2026"):
        assert parse_retry_after(unreadable, NOW) is None


@pytest.mark.parametrize("status, headers, message, limited", [
    (429, {}, "", True),
    (403, {"retry-after": "5"}, "", True),
    (403, {"x-ratelimit-remaining": "0"}, "", True),
    (403, {}, "You have exceeded a secondary rate limit", True),
    (403, {"x-ratelimit-remaining": "12"}, "Resource not accessible by integration", False),
    (401, {"x-ratelimit-remaining": "0"}, "Bad credentials", False),
    (500, {}, "", False),  # retried as a server error, not as a rate limit
])
def test_rate_limits_are_told_from_permission_errors(status, headers, message, limited):
    assert is_rate_limited(status, headers, message) is limited


def test_server_wait_prefers_retry_after_then_the_reset_time():
    reset = str(int(NOW) + 30)
    assert server_wait({"retry-after": "4", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}, NOW) == 4.0
    assert server_wait({"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}, NOW) == 31.0
    assert server_wait({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) - 5)}, NOW) == 1.0
    assert server_wait({"x-ratelimit-remaining": "3", "x-ratelimit-reset": reset}, NOW) is None  # quota left
    assert server_wait({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "soon"}, NOW) is None
    assert server_wait({}, NOW) is None


def test_case_insensitive_headers_work_as_they_come_off_the_wire():
    headers = httpx.Headers({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 9)})
    assert is_rate_limited(403, headers) and server_wait(headers, NOW) == 10.0


def test_backoff_doubles_up_to_its_cap():
    assert [backoff(n, 0.5, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
