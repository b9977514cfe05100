"""What a slot's fetch results mean: when the slot gives up, which drops make it incomplete, and
the one line that describes a dropped URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from deadzone_build.errors import FetchError
from deadzone_build.sources.transport import rewrite_from_env, rewrite_url

if TYPE_CHECKING:
    from deadzone_build.sources.fetch import FetchResult

# A slot fails when more than this fraction of its URLs were dropped (or all of them).
MAX_DROP_FRACTION = 0.5
_LISTED_IN_MESSAGE = 10


def describe_drop(report: dict[str, Any]) -> str:
    """`URL: reason` for a dropped URL's report, naming the URL actually requested when
    DEADZONE_URL_REWRITE rewrote it (the report itself keeps the registry URL)."""
    url = str(report.get("url", ""))
    try:
        wire = rewrite_url(url, rewrite_from_env())
    except FetchError:
        wire = url
    via = f" (fetched as {wire})" if wire != url else ""
    final = f" (redirected to {report['final_url']})" if report.get("final_url") else ""
    return f"{url}{via}{final}: {report.get('reason')}"


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



def incomplete_urls(reports: Sequence[dict[str, Any]]) -> list[str]:
    """The URLs of a slot's report dropped for a cause that may pass (5xx, 429, timeout, network,
    deadline): an artifact built without them is `incomplete` (see the module docstring)."""
    return [str(r.get("url")) for r in reports if r.get("status") != "ok" and r.get("retryable")]
